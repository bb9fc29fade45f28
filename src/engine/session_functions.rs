//! Functions whose value is the calling session's state, registered per session (the list of
//! stateless functions is `functions::register_all`).
//!
//! - `current_setting(name [, missing_ok])`: a Postgres parameter (as `SHOW` gives it) or a
//!   DataFusion setting (`lance.nprobes`, `datafusion.execution.batch_size`); an unknown name
//!   fails with SQLSTATE 42704, or is NULL when `missing_ok` is true, as in Postgres (asyncpg
//!   asks for `jit` and expects exactly that error; Grafana reads `search_path`).
//! - `set_config(name, value, false)`: `SET name = value` for a Postgres parameter, returning
//!   the value as stored; unknown names fail with 42704 as `SET` does. `lance.*` and
//!   `datafusion.*` settings are read when a statement is planned, so they change only with
//!   `SET`, and `is_local = true` (until the transaction ends) is refused: both with 0A000.
//! - `session_user` and `current_user`: who logged in, replacing the catalog emulation's fixed
//!   `postgres`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::engine::variables::Variables;
use crate::error::Error;

/// Every session function, bound to `variables`.
pub(crate) fn session_functions(variables: &Variables) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(CurrentSetting::new(variables.clone())),
        ScalarUDF::new_from_impl(SetConfig::new(variables.clone())),
        ScalarUDF::new_from_impl(SessionUser::new("session_user", variables.clone())),
        ScalarUDF::new_from_impl(SessionUser::new("current_user", variables.clone())),
    ]
}

#[derive(Debug)]
struct CurrentSetting {
    variables: Variables,
    signature: Signature,
}

impl CurrentSetting {
    fn new(variables: Variables) -> Self {
        let signature = Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        );
        CurrentSetting {
            variables,
            signature,
        }
    }

    fn lookup(
        &self,
        name: &str,
        missing_ok: bool,
        config: &ConfigOptions,
    ) -> Result<Option<String>> {
        if let Some(value) = self.variables.get(name) {
            return Ok(Some(value));
        }
        let setting = config
            .entries()
            .into_iter()
            .find(|entry| entry.key.eq_ignore_ascii_case(name));
        match setting {
            Some(entry) => Ok(Some(entry.value.unwrap_or_default())),
            None if missing_ok => Ok(None),
            None => Err(DataFusionError::External(Box::new(
                Error::UndefinedParameter {
                    name: name.to_string(),
                },
            ))),
        }
    }
}

impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for CurrentSetting {}

impl std::hash::Hash for CurrentSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(flag))) => flag.unwrap_or(false),
            Some(_) => {
                return Err(DataFusionError::Plan(
                    "current_setting's missing_ok must be a constant".into(),
                ));
            }
            None => false,
        };
        let config = args.config_options.as_ref();
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(name)) => {
                let value = match name {
                    Some(name) => self.lookup(name, missing_ok, config)?,
                    None => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
            }
            ColumnarValue::Array(names) => {
                let names = names.as_string::<i32>();
                let values = (0..names.len())
                    .map(|row| {
                        if names.is_null(row) {
                            Ok(None)
                        } else {
                            self.lookup(names.value(row), missing_ok, config)
                        }
                    })
                    .collect::<Result<StringArray>>()?;
                Ok(ColumnarValue::Array(Arc::new(values) as ArrayRef))
            }
            other => Err(DataFusionError::Plan(format!(
                "current_setting takes a text name, got {}",
                other.data_type()
            ))),
        }
    }
}

#[derive(Debug)]
struct SetConfig {
    variables: Variables,
    signature: Signature,
}

impl SetConfig {
    fn new(variables: Variables) -> Self {
        let signature = Signature::exact(
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            Volatility::Volatile,
        );
        SetConfig {
            variables,
            signature,
        }
    }

    fn set(&self, name: &str, value: &str, local: bool) -> Result<String> {
        let refuse =
            |what: String| DataFusionError::External(Box::new(Error::Unsupported { what }));
        if local {
            return Err(refuse(format!(
                "set_config('{name}', ..., true): parameters local to a transaction"
            )));
        }
        if name.contains('.') {
            return Err(refuse(format!(
                "set_config('{name}', ...): use SET {name} = ... for engine settings"
            )));
        }
        self.variables
            .set(name, value)
            .map_err(|error| DataFusionError::External(Box::new(error)))
    }
}

impl PartialEq for SetConfig {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for SetConfig {}

impl std::hash::Hash for SetConfig {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Scalars only (the usual call) become one-row arrays: the setting is made once.
        let columns = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = columns[0].len();
        let names = columns[0].as_string::<i32>();
        let values = columns[1].as_string::<i32>();
        let locals = columns[2].as_boolean();
        let stored = (0..rows)
            .map(|row| {
                if names.is_null(row) || values.is_null(row) {
                    return Ok(None);
                }
                let local = !locals.is_null(row) && locals.value(row);
                self.set(names.value(row), values.value(row), local)
                    .map(Some)
            })
            .collect::<Result<StringArray>>()?;
        if args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &stored, 0,
            )?));
        }
        Ok(ColumnarValue::Array(Arc::new(stored) as ArrayRef))
    }
}

#[derive(Debug)]
struct SessionUser {
    name: &'static str,
    variables: Variables,
    signature: Signature,
}

impl SessionUser {
    fn new(name: &'static str, variables: Variables) -> Self {
        SessionUser {
            name,
            variables,
            signature: Signature::exact(Vec::new(), Volatility::Stable),
        }
    }
}

impl PartialEq for SessionUser {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for SessionUser {}

impl std::hash::Hash for SessionUser {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for SessionUser {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let user = self.variables.get("session_authorization");
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(user)))
    }
}
