// A Flight SQL client written with Go's database/sql and arrow-go's Flight SQL driver: the
// tests run it against `lancesql serve` and compare what it prints with the engine's results.
//
// Usage: flightsql-client DSN
// Prints one JSON object: a query's rows, a prepared statement's rows for two parameter values,
// and the error text of a query naming a missing table.
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"

	_ "github.com/apache/arrow-go/v18/arrow/flight/flightsql/driver"
)

func rows(db *sql.DB, query string, args ...any) ([][]any, error) {
	result, err := db.Query(query, args...)
	if err != nil {
		return nil, err
	}
	defer result.Close()
	columns, err := result.Columns()
	if err != nil {
		return nil, err
	}
	var all [][]any
	for result.Next() {
		values := make([]any, len(columns))
		pointers := make([]any, len(columns))
		for i := range values {
			pointers[i] = &values[i]
		}
		if err := result.Scan(pointers...); err != nil {
			return nil, err
		}
		all = append(all, values)
	}
	return all, result.Err()
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: flightsql-client DSN")
		os.Exit(2)
	}
	db, err := sql.Open("flightsql", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer db.Close()
	out := map[string]any{}
	query, err := rows(db, "SELECT id, name FROM products WHERE id < 3 ORDER BY id")
	if err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
	out["query"] = query
	statement, err := db.Prepare("SELECT id FROM products WHERE id > $1 ORDER BY id LIMIT 2")
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
	var prepared [][]any
	for _, above := range []int64{3, 7} {
		result, err := statement.Query(above)
		if err != nil {
			fmt.Fprintln(os.Stderr, "prepared query:", err)
			os.Exit(1)
		}
		for result.Next() {
			var id int64
			if err := result.Scan(&id); err != nil {
				fmt.Fprintln(os.Stderr, "scan:", err)
				os.Exit(1)
			}
			prepared = append(prepared, []any{above, id})
		}
		result.Close()
	}
	statement.Close()
	out["prepared"] = prepared
	if _, err := rows(db, "SELECT * FROM no_such_table"); err != nil {
		out["error"] = err.Error()
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(encoded))
}
