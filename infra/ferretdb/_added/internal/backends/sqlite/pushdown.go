// Copyright 2026 the osmcloud authors. Licensed under the Apache License, Version 2.0.
//
// osmcloud addition to FerretDB v1.24.2's SQLite backend, copied into
// internal/backends/sqlite by infra/ferretdb/build.sh; patch 0001 calls pushdownWhere.

package sqlite

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// plainField is a top-level field name SQLite's `->` operator takes as a label as it is.
var plainField = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// fieldColumn is the expression FerretDB's own indexes use for a top-level field
// (metadata.Registry.IndexesCreate); a condition must use the identical expression for
// SQLite to answer it from such an index.
func fieldColumn(field string) string {
	return fmt.Sprintf(`%s->"%s"`, metadata.DefaultColumn, field)
}

// arrayTypeColumn is the expression of the index osmcloud-ferretdb adds beside each index
// on a top-level field (main.go, indexDatabase): which documents hold an array there.
func arrayTypeColumn(field string) string {
	return fmt.Sprintf(`json_type(%s)`, fieldColumn(field))
}

// dateColumn and dateTypeColumn are the expressions of the partial index osmcloud-ferretdb adds
// beside each single-field index (main.go, indexDatabase): the field's value as an SQL
// number, for the documents where it is a JSON integer (how sjson stores dates, as
// milliseconds; also int32/int64 numbers).
func dateColumn(field string) string {
	return fmt.Sprintf(`%s->>'$.%s'`, metadata.DefaultColumn, field)
}

func dateTypeColumn(field string) string {
	return fmt.Sprintf(`json_type(%s->'$.%s')`, metadata.DefaultColumn, field)
}

// rangeOperators are the comparisons a date condition may push down, as SQL operators.
var rangeOperators = map[string]string{"$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">="}

// pushdownWhere turns what it can of a filter into a WHERE clause that selects a superset
// of the matching documents (the handler filters every returned document again, so a
// superset is all Query has to return), using indexes instead of decoding every document:
//
//   - {_id: x} and {_id: {$in: [x, ...]}} (strings or ObjectIDs) become _id = ? / _id IN (...)
//     on the _id index; _id is never an array, so nothing else is needed;
//   - otherwise {f: "s"} and {f: {$in: ["s", ...]}} on top-level fields (strings or booleans) become
//     f = ? / f IN (...), and {f: {$lt|$lte|$gt|$gte: date, ...}} becomes (f is an integer
//     AND f's number < ? ...): sjson stores a date as an integer of milliseconds, and in
//     MongoDB a date is compared with dates only, so the integers are a superset. A document
//     whose f is an array also matches in MongoDB when the array holds a matching element,
//     so the clause adds every document holding an array in any of those fields:
//     (f = ? AND g IN (...)) OR json_type(f) = 'array' OR json_type(g) = 'array'.
//     With an index on each expression (osmcloud-ferretdb adds those for the arrays, see
//     main.go) SQLite answers that as a union of index lookups. Without one it still filters
//     in SQL, which costs far less than decoding every document for the handler.
//
// Strings whose JSON form has an escape are left to the handler: the comparison is on the
// JSON text SQLite renders, which must be the same text sjson writes.
// Any other condition is left to the handler, as upstream does with everything but {_id: x}.
func pushdownWhere(filter *types.Document) (string, []any) {
	if filter == nil || filter.Len() == 0 {
		return "", nil
	}

	if v, err := filter.Get("_id"); err == nil {
		if values, ok := pushableValues(v, true); ok {
			return " WHERE " + inClause(metadata.IDColumn, len(values)), values
		}
	}

	var conditions, arrays []string
	var args []any

	for _, key := range filter.Keys() {
		if key == "_id" || !plainField.MatchString(key) {
			continue
		}

		v := must.NotFail(filter.Get(key))

		if values, ok := pushableValues(v, false); ok {
			conditions = append(conditions, inClause(fieldColumn(key), len(values)))
			args = append(args, values...)
		} else if condition, values, ok := dateRange(key, v); ok {
			conditions = append(conditions, condition)
			args = append(args, values...)
		} else {
			continue
		}

		arrays = append(arrays, arrayTypeColumn(key)+` = 'array'`)
	}

	if len(conditions) == 0 {
		return "", nil
	}

	return " WHERE (" + strings.Join(conditions, " AND ") + ") OR " + strings.Join(arrays, " OR "), args
}

// pushableValues returns the JSON texts a condition compares with: one for a plain value,
// several for {$in: [...]} (its only operator), if every one can be compared as text.
func pushableValues(v any, isID bool) ([]any, bool) {
	if d, ok := v.(*types.Document); ok {
		if d.Len() != 1 {
			return nil, false
		}

		in, err := d.Get("$in")
		if err != nil {
			return nil, false
		}

		arr, ok := in.(*types.Array)
		if !ok || arr.Len() == 0 {
			return nil, false
		}

		values := make([]any, arr.Len())

		for i := 0; i < arr.Len(); i++ {
			text, ok := pushableText(must.NotFail(arr.Get(i)), isID)
			if !ok {
				return nil, false
			}

			values[i] = text
		}

		return values, true
	}

	text, ok := pushableText(v, isID)
	if !ok {
		return nil, false
	}

	return []any{text}, true
}

// pushableText is a value's JSON text as sjson writes it, for strings without escapes,
// booleans, and ObjectIDs as _id (as upstream). Not numbers: int32, int64 and double
// values that MongoDB finds equal can have different JSON texts.
func pushableText(v any, isID bool) (string, bool) {
	switch v.(type) {
	case string:
	case bool:
		if isID {
			return "", false
		}
	case types.ObjectID:
		if !isID {
			return "", false
		}
	default:
		return "", false
	}

	b, err := sjson.MarshalSingleValue(v)
	if err != nil || strings.ContainsRune(string(b), '\\') {
		return "", false
	}

	return string(b), true
}

func inClause(column string, n int) string {
	if n == 1 {
		return column + " = ?"
	}

	return column + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// dateRange turns {$lt|$lte|$gt|$gte: date, ...} (range operators only, every value a date)
// into a condition on the field's integer value, answered by the partial index main.go adds
// beside a single-field index (its WHERE term is repeated here so SQLite can use it).
func dateRange(field string, v any) (string, []any, bool) {
	d, ok := v.(*types.Document)
	if !ok || d.Len() == 0 {
		return "", nil, false
	}

	terms := []string{dateTypeColumn(field) + ` = 'integer'`}
	var args []any

	for _, op := range d.Keys() {
		sqlOp, known := rangeOperators[op]
		if !known {
			return "", nil, false
		}

		t, isDate := must.NotFail(d.Get(op)).(time.Time)
		if !isDate {
			return "", nil, false
		}

		terms = append(terms, fmt.Sprintf("%s %s ?", dateColumn(field), sqlOp))
		args = append(args, t.UnixMilli())
	}

	return "(" + strings.Join(terms, " AND ") + ")", args, true
}
