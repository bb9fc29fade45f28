//! Integer overflow is an error (SQLSTATE 22003), as in Postgres, never a wrapped value.
//!
//! DataFusion 54 wraps integer `+`, `-`, `*` and `sum` on overflow. This module replaces both:
//! - [`CheckedArithmeticPlanner`] plans `a + b`, `a - b` and `a * b` whose operands are both
//!   integers as `checked_add` / `checked_sub` / `checked_mul`, which use Arrow's checked kernels.
//!   Their result type and column name are those of the plain operator, so `SELECT 41 + 1` still
//!   names its column `Int64(41) + Int64(1)`; EXPLAIN shows the function name. Constant folding
//!   keeps an overflowing constant expression unfolded, so it fails when the statement runs.
//! - [`CheckedSum`] is `sum` with checked addition for integer inputs (plain, grouped and
//!   windowed), and DataFusion's own `sum` for every other type and for `sum(DISTINCT ...)`.

use std::mem::size_of_val;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{ArrowNativeTypeOp, ArrowPrimitiveType, DataType, Int64Type, UInt64Type};
use arrow::error::ArrowError;
use datafusion::common::{DFSchema, Result as DFResult, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, Expr, ExprSchemable,
    GroupsAccumulator, Operator, ReversedUDAF, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    SetMonotonicity, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use datafusion_functions_aggregate_common::aggregate::groups_accumulator::prim_op::PrimitiveGroupsAccumulator;

/// The expression planner that routes integer arithmetic to the checked functions.
#[derive(Debug, Default)]
pub struct CheckedArithmeticPlanner;

impl ExprPlanner for CheckedArithmeticPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DFResult<PlannerResult<RawBinaryExpr>> {
        let operator = match expr.op {
            BinaryOperator::Plus => Operator::Plus,
            BinaryOperator::Minus => Operator::Minus,
            BinaryOperator::Multiply => Operator::Multiply,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let (left_type, right_type) =
            match (expr.left.get_type(schema), expr.right.get_type(schema)) {
                (Ok(left), Ok(right)) if left.is_integer() && right.is_integer() => (left, right),
                // Unknown types (unbound parameters) and other types keep DataFusion's operator.
                _ => return Ok(PlannerResult::Original(expr)),
            };
        // A chain of one precedence over one type (`a + b - c`) becomes one call with every
        // term, evaluated left to right exactly as nested calls would be: nested calls would
        // make naming the expression cost the cube of its length.
        if let Expr::ScalarFunction(call) = &expr.left
            && let Some(chain) = call.func.inner().downcast_ref::<CheckedArithmetic>()
            && chain.extends_with(operator)
            && left_type == right_type
            && call
                .args
                .iter()
                .all(|arg| arg.get_type(schema).is_ok_and(|t| t == right_type))
        {
            let mut operators = chain.operators.clone();
            operators.push(operator);
            let mut args = call.args.clone();
            args.push(expr.right);
            return Ok(PlannerResult::Planned(CheckedArithmetic::call(
                operators, args,
            )));
        }
        Ok(PlannerResult::Planned(CheckedArithmetic::call(
            vec![operator],
            vec![expr.left, expr.right],
        )))
    }
}

/// Integer arithmetic that fails on overflow: `args[0] op[0] args[1] op[1] args[2] ...`, folded
/// left to right. One operator is `checked_add`, `checked_sub` or `checked_mul`, with
/// DataFusion's coercion for that operator; a longer chain (`checked_arithmetic`) has arguments
/// of one type already and operators of one precedence.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedArithmetic {
    operators: Vec<Operator>,
    signature: Signature,
}

impl CheckedArithmetic {
    fn call(operators: Vec<Operator>, args: Vec<Expr>) -> Expr {
        ScalarUDF::new_from_impl(CheckedArithmetic {
            operators,
            signature: Signature::user_defined(Volatility::Immutable),
        })
        .call(args)
    }

    /// Whether `operator` continues this chain (same precedence: `+`/`-`, or `*`).
    fn extends_with(&self, operator: Operator) -> bool {
        let additive = |op: &Operator| matches!(op, Operator::Plus | Operator::Minus);
        self.operators
            .iter()
            .all(|op| additive(op) == additive(&operator))
    }

    /// The argument types after coercion.
    fn input_types(&self, types: &[DataType]) -> DFResult<Vec<DataType>> {
        match (types, self.operators.as_slice()) {
            ([left, right], [operator]) => {
                let (left, right) =
                    BinaryTypeCoercer::new(left, operator, right).get_input_types()?;
                Ok(vec![left, right])
            }
            ([first, rest @ ..], operators)
                if rest.len() == operators.len() && rest.iter().all(|t| t == first) =>
            {
                Ok(types.to_vec())
            }
            _ => Err(DataFusionError::Plan(format!(
                "{} takes {} integers of one type, got {types:?}",
                self.name(),
                self.operators.len() + 1
            ))),
        }
    }
}

impl ScalarUDFImpl for CheckedArithmetic {
    fn name(&self) -> &str {
        match self.operators.as_slice() {
            [Operator::Plus] => "checked_add",
            [Operator::Minus] => "checked_sub",
            [Operator::Multiply] => "checked_mul",
            _ => "checked_arithmetic",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DFResult<Vec<DataType>> {
        self.input_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        match (arg_types, self.operators.as_slice()) {
            ([left, right], [operator]) => {
                BinaryTypeCoercer::new(left, operator, right).get_result_type()
            }
            _ => Ok(self.input_types(arg_types)?[0].clone()),
        }
    }

    fn schema_name(&self, args: &[Expr]) -> DFResult<String> {
        let mut name = String::new();
        for (index, arg) in args.iter().enumerate() {
            if let Some(operator) = index.checked_sub(1).and_then(|i| self.operators.get(i)) {
                name.push_str(&format!(" {operator} "));
            }
            name.push_str(&arg.schema_name().to_string());
        }
        Ok(name)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let mut terms = args.args.iter();
        let Some(first) = terms.next() else {
            return Err(DataFusionError::Plan(format!(
                "{} needs arguments",
                self.name()
            )));
        };
        let mut result = first.to_array(args.number_rows)?;
        for (term, operator) in terms.zip(&self.operators) {
            let term = term.to_array(args.number_rows)?;
            result = match operator {
                Operator::Plus => arrow::compute::kernels::numeric::add(&result, &term),
                Operator::Minus => arrow::compute::kernels::numeric::sub(&result, &term),
                _ => arrow::compute::kernels::numeric::mul(&result, &term),
            }?;
        }
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// `sum` with checked integer addition (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct CheckedSum {
    inner: Sum,
}

impl CheckedSum {
    /// The aggregate, ready to register in place of DataFusion's `sum`.
    pub fn udaf() -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::new_from_impl(CheckedSum::default()))
    }
}

/// The integer result types `sum` produces (smaller integers are widened first).
enum IntegerSum {
    Signed,
    Unsigned,
}

fn integer_sum(args: &AccumulatorArgs) -> Option<IntegerSum> {
    match args.return_field.data_type() {
        DataType::Int64 if !args.is_distinct => Some(IntegerSum::Signed),
        DataType::UInt64 if !args.is_distinct => Some(IntegerSum::Unsigned),
        _ => None,
    }
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DFResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        match integer_sum(&args) {
            Some(IntegerSum::Signed) => Ok(Box::new(CheckedSumAccumulator::<Int64Type>::new())),
            Some(IntegerSum::Unsigned) => Ok(Box::new(CheckedSumAccumulator::<UInt64Type>::new())),
            None => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DFResult<Vec<arrow::datatypes::FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DFResult<Box<dyn GroupsAccumulator>> {
        match integer_sum(&args) {
            Some(IntegerSum::Signed) => Ok(Box::new(CheckedSumGroups::new::<Int64Type>())),
            Some(IntegerSum::Unsigned) => Ok(Box::new(CheckedSumGroups::new::<UInt64Type>())),
            None => self.inner.create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DFResult<Box<dyn Accumulator>> {
        match integer_sum(&args) {
            Some(IntegerSum::Signed) => Ok(Box::new(CheckedSumAccumulator::<Int64Type>::new())),
            Some(IntegerSum::Unsigned) => Ok(Box::new(CheckedSumAccumulator::<UInt64Type>::new())),
            None => self.inner.create_sliding_accumulator(args),
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.reverse_expr()
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

fn overflow(type_name: &DataType) -> DataFusionError {
    DataFusionError::ArrowError(
        Box::new(ArrowError::ArithmeticOverflow(format!(
            "sum is out of range for type {type_name}"
        ))),
        None,
    )
}

/// A running integer sum that fails on overflow; also serves windows (it can retract).
#[derive(Debug)]
struct CheckedSumAccumulator<T: ArrowPrimitiveType + std::fmt::Debug> {
    sum: T::Native,
    /// Non-null values currently summed (a sum of no values is NULL).
    count: u64,
}

impl<T: ArrowPrimitiveType + std::fmt::Debug> CheckedSumAccumulator<T> {
    fn new() -> Self {
        CheckedSumAccumulator {
            sum: T::Native::ZERO,
            count: 0,
        }
    }

    fn fold(&mut self, values: &ArrayRef, subtract: bool) -> DFResult<()> {
        for value in values.as_primitive::<T>().iter().flatten() {
            let next = if subtract {
                self.sum.sub_checked(value)
            } else {
                self.sum.add_checked(value)
            };
            self.sum = next.map_err(|_| overflow(&T::DATA_TYPE))?;
            if subtract {
                self.count = self.count.saturating_sub(1);
            } else {
                self.count += 1;
            }
        }
        Ok(())
    }

    fn current(&self) -> ScalarValue {
        let value = (self.count > 0).then_some(self.sum);
        ScalarValue::new_primitive::<T>(value, &T::DATA_TYPE).unwrap_or_else(|_| ScalarValue::Null)
    }
}

impl<T: ArrowPrimitiveType + std::fmt::Debug> Accumulator for CheckedSumAccumulator<T> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        match values.first() {
            Some(values) => self.fold(values, false),
            None => Ok(()),
        }
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DFResult<()> {
        match values.first() {
            Some(values) => self.fold(values, true),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DFResult<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> DFResult<Vec<ScalarValue>> {
        Ok(vec![self.current()])
    }

    fn evaluate(&mut self) -> DFResult<ScalarValue> {
        Ok(self.current())
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// DataFusion's grouped primitive accumulator with checked addition: an overflow in any group
/// is remembered by the addition and reported by the batch that caused it.
struct CheckedSumGroups {
    inner: Box<dyn GroupsAccumulator>,
    overflowed: Arc<AtomicBool>,
    data_type: DataType,
}

impl CheckedSumGroups {
    fn new<T: ArrowPrimitiveType + Send>() -> Self {
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        let inner = PrimitiveGroupsAccumulator::<T, _>::new(
            &T::DATA_TYPE,
            move |sum: &mut T::Native, value: T::Native| match sum.add_checked(value) {
                Ok(next) => *sum = next,
                Err(_) => flag.store(true, Ordering::Relaxed),
            },
        );
        CheckedSumGroups {
            inner: Box::new(inner),
            overflowed,
            data_type: T::DATA_TYPE,
        }
    }

    fn check(&self) -> DFResult<()> {
        if self.overflowed.load(Ordering::Relaxed) {
            Err(overflow(&self.data_type))
        } else {
            Ok(())
        }
    }
}

impl GroupsAccumulator for CheckedSumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.inner
            .update_batch(values, group_indices, opt_filter, total_num_groups)?;
        self.check()
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DFResult<()> {
        self.inner
            .merge_batch(values, group_indices, opt_filter, total_num_groups)?;
        self.check()
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DFResult<ArrayRef> {
        self.check()?;
        self.inner.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> DFResult<Vec<ArrayRef>> {
        self.check()?;
        self.inner.state(emit_to)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DFResult<Vec<ArrayRef>> {
        self.inner.convert_to_state(values, opt_filter)
    }

    fn supports_convert_to_state(&self) -> bool {
        self.inner.supports_convert_to_state()
    }

    fn size(&self) -> usize {
        self.inner.size() + size_of_val(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn sums_fail_on_overflow_and_retract() {
        let mut sum = CheckedSumAccumulator::<Int64Type>::new();
        let values: ArrayRef = Arc::new(Int64Array::from(vec![Some(i64::MAX - 1), None]));
        sum.update_batch(&[values]).unwrap();
        assert_eq!(
            sum.evaluate().unwrap(),
            ScalarValue::Int64(Some(i64::MAX - 1))
        );
        let more: ArrayRef = Arc::new(Int64Array::from(vec![2]));
        let error = sum.update_batch(std::slice::from_ref(&more)).unwrap_err();
        assert!(
            matches!(error, DataFusionError::ArrowError(ref e, _) if matches!(**e, ArrowError::ArithmeticOverflow(_))),
            "{error}"
        );
        let first: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX - 1]));
        sum.retract_batch(&[first]).unwrap();
        assert_eq!(sum.evaluate().unwrap(), ScalarValue::Int64(None));
    }

    #[test]
    fn grouped_sums_fail_on_overflow() {
        let mut groups = CheckedSumGroups::new::<Int64Type>();
        let values: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1, 5]));
        let error = groups
            .update_batch(&[values], &[0, 0, 1], None, 2)
            .unwrap_err();
        assert!(error.to_string().contains("out of range"), "{error}");
    }
}
