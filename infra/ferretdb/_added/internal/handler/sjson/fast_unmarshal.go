// osmcloud: a one-pass decoder for the documents FerretDB stores in SQLite (sjson: JSON
// values plus a "$s" schema that names each value's BSON type). Not part of FerretDB:
// copied into internal/handler/sjson by infra/ferretdb/build.sh; patch 0003 calls it.
//
// FerretDB's own decoder (unmarshalSlow in sjson.go) runs encoding/json's Decoder once per
// value, into maps of raw messages, and decodes the schema of every document again. This
// one walks the bytes once, takes each value's type from the schema and keeps decoded
// schemas in a small cache (documents of one collection share a handful of schemas).
//
// Contract: for any input, fastUnmarshal returns either an error or exactly the document
// unmarshalSlow returns. Whatever it is unsure of, it refuses, and Unmarshal falls back to
// the original.
// fast_unmarshal_test.go checks the contract on generated and on corrupted documents.

package sjson

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/FerretDB/FerretDB/internal/types"
)

// errFast is the one error of the fast path: the caller falls back to the original decoder,
// which explains what is wrong.
var errFast = errors.New("sjson: not decodable by the fast path")

// member is one "key": value of an object; the value is data[start:end].
type member struct {
	key        string
	start, end int
}

// schemaCache maps a schema's JSON text to the decoded schema. Decoded schemas are never
// changed after decoding, so they are shared between connections.
var schemaCache = struct {
	sync.RWMutex
	m     map[string]*schema
	bytes int // of the keys
}{m: map[string]*schema{}}

// The cache starts again when it holds more schemas or schema bytes than this (a document
// with a long array has a long schema: one element type per item).
const (
	schemaCacheMaxEntries = 4096
	schemaCacheMaxBytes   = 8 << 20
)

func cachedSchema(raw []byte) (*schema, error) {
	schemaCache.RLock()
	sch := schemaCache.m[string(raw)]
	schemaCache.RUnlock()

	if sch != nil {
		return sch, nil
	}

	// decoded exactly as unmarshalSlow decodes it
	sch = new(schema)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()

	if err := dec.Decode(sch); err != nil {
		return nil, errFast
	}

	if dec.More() {
		return nil, errFast
	}

	schemaCache.Lock()
	if len(schemaCache.m) >= schemaCacheMaxEntries || schemaCache.bytes+len(raw) > schemaCacheMaxBytes {
		schemaCache.m, schemaCache.bytes = map[string]*schema{}, 0
	}
	schemaCache.m[string(raw)] = sch
	schemaCache.bytes += len(raw)
	schemaCache.Unlock()

	return sch, nil
}

// fastUnmarshal decodes a top-level sjson document (see the contract above).
func fastUnmarshal(data []byte) (*types.Document, error) {
	d := fastDecoder{data: data}

	members, end, err := d.object(d.skipSpace(0))
	if err != nil {
		return nil, err
	}

	if end != len(data) { // the original refuses even trailing spaces
		return nil, errFast
	}

	schemaAt := -1

	for i, m := range members {
		if m.key == "$s" {
			if schemaAt >= 0 {
				return nil, errFast
			}

			schemaAt = i
		}
	}

	if schemaAt < 0 {
		return nil, errFast
	}

	sch, err := cachedSchema(data[members[schemaAt].start:members[schemaAt].end])
	if err != nil {
		return nil, err
	}

	fields := make([]member, 0, len(members)-1)
	fields = append(fields, members[:schemaAt]...)
	fields = append(fields, members[schemaAt+1:]...)

	return d.fill(fields, sch)
}

type fastDecoder struct {
	data []byte
}

// fill builds the document of these fields in the schema's key order, as the original does;
// the fields must be the schema's keys, each once.
func (d *fastDecoder) fill(fields []member, sch *schema) (*types.Document, error) {
	if len(sch.Keys) != len(fields) || hasDuplicateKeys(fields) {
		return nil, errFast // (encoding/json keeps the last of duplicates: the original decides)
	}

	doc := new(types.Document)

	for i, key := range sch.Keys {
		m, ok := findMember(fields, i, key)
		if !ok {
			return nil, errFast
		}

		v, err := d.value(m.start, m.end, sch.Properties[key])
		if err != nil {
			return nil, err
		}

		doc.Set(key, v)
	}

	return doc, nil
}

// findMember looks for key at position i first: documents keep their schema's order.
func findMember(fields []member, i int, key string) (member, bool) {
	if i < len(fields) && fields[i].key == key {
		return fields[i], true
	}

	for _, m := range fields {
		if m.key == key {
			return m, true
		}
	}

	return member{}, false
}

func hasDuplicateKeys(fields []member) bool {
	if len(fields) <= 16 {
		for i := range fields {
			for j := i + 1; j < len(fields); j++ {
				if fields[i].key == fields[j].key {
					return true
				}
			}
		}

		return false
	}

	seen := make(map[string]struct{}, len(fields))

	for _, m := range fields {
		if _, ok := seen[m.key]; ok {
			return true
		}

		seen[m.key] = struct{}{}
	}

	return false
}

// value decodes data[start:end] (one JSON value) as unmarshalSingleValue does.
func (d *fastDecoder) value(start, end int, sch *elem) (any, error) {
	raw := d.data[start:end]

	if string(raw) == "null" {
		return types.Null, nil
	}

	if sch == nil {
		return nil, errFast
	}

	switch sch.Type {
	case elemTypeObject:
		if sch.Schema == nil {
			return nil, errFast
		}

		members, objEnd, err := d.object(start)
		if err != nil || objEnd != end {
			return nil, errFast
		}

		if len(members) == 0 {
			return new(types.Document), nil
		}

		return d.fill(members, sch.Schema)

	case elemTypeArray:
		if sch.Items == nil {
			return nil, errFast
		}

		spans, arrEnd, err := d.array(start)
		if err != nil || arrEnd != end || len(spans) != len(sch.Items) {
			return nil, errFast
		}

		arr := types.MakeArray(len(spans))

		for i, span := range spans {
			v, err := d.value(span[0], span[1], sch.Items[i])
			if err != nil {
				return nil, err
			}

			arr.Append(v)
		}

		return arr, nil

	case elemTypeDouble:
		if !isJSONNumber(raw) {
			return nil, errFast
		}

		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, errFast
		}

		return f, nil

	case elemTypeString:
		return decodeString(raw)

	case elemTypeBinData:
		s, err := decodeString(raw)
		if err != nil || sch.Subtype == nil {
			return nil, errFast
		}

		// as encoding/json decodes a []byte
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))

		n, err := base64.StdEncoding.Decode(b, []byte(s))
		if err != nil {
			return nil, errFast
		}

		return types.Binary{B: b[:n], Subtype: *sch.Subtype}, nil

	case elemTypeObjectID:
		s, err := decodeString(raw)
		if err != nil {
			return nil, err
		}

		b, err := hex.DecodeString(s)
		if err != nil || len(b) != types.ObjectIDLen {
			return nil, errFast
		}

		var id types.ObjectID
		copy(id[:], b)

		return id, nil

	case elemTypeBool:
		switch string(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}

		return nil, errFast

	case elemTypeDate:
		ms, err := parseInt(raw, 64)
		if err != nil {
			return nil, err
		}

		return time.UnixMilli(ms), nil

	case elemTypeRegex:
		s, err := decodeString(raw)
		if err != nil || sch.Options == nil {
			return nil, errFast
		}

		return types.Regex{Pattern: s, Options: *sch.Options}, nil

	case elemTypeInt:
		i, err := parseInt(raw, 32)
		if err != nil {
			return nil, err
		}

		return int32(i), nil

	case elemTypeLong:
		return parseInt(raw, 64)

	case elemTypeTimestamp:
		if !isJSONNumber(raw) {
			return nil, errFast
		}

		u, err := strconv.ParseUint(string(raw), 10, 64)
		if err != nil {
			return nil, errFast
		}

		return types.Timestamp(u), nil
	}

	// elemTypeNull with a value that is not null, or an unknown type
	return nil, errFast
}

func parseInt(raw []byte, bits int) (int64, error) {
	if !isJSONNumber(raw) {
		return 0, errFast
	}

	i, err := strconv.ParseInt(string(raw), 10, bits)
	if err != nil {
		return 0, errFast
	}

	return i, nil
}

// isJSONNumber reports whether raw is a number as JSON writes it (RFC 8259), so the
// strconv parsers never accept what encoding/json would refuse ("+1", ".5", "0x10", "1_0").
func isJSONNumber(raw []byte) bool {
	i, n := 0, len(raw)
	if i < n && raw[i] == '-' {
		i++
	}

	switch {
	case i < n && raw[i] == '0':
		i++
	case i < n && raw[i] >= '1' && raw[i] <= '9':
		for i < n && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
	default:
		return false
	}

	if i < n && raw[i] == '.' {
		i++
		if i >= n || raw[i] < '0' || raw[i] > '9' {
			return false
		}

		for i < n && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
	}

	if i < n && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < n && (raw[i] == '+' || raw[i] == '-') {
			i++
		}

		if i >= n || raw[i] < '0' || raw[i] > '9' {
			return false
		}

		for i < n && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
	}

	return i == n
}

// decodeString decodes a JSON string literal (raw includes the quotes) by encoding/json's
// rules, which the original applies: plain strings are copied as they are, escapes are
// decoded as encoding/json's unquote does (a lone surrogate or an invalid byte becomes
// U+FFFD), and whatever its scanner refuses is refused.
func decodeString(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errFast
	}

	inner := raw[1 : len(raw)-1]
	plain := true

	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			plain = false
			break
		}
	}

	if plain && utf8.Valid(inner) {
		return string(inner), nil
	}

	return unquote(inner)
}

// unquote follows encoding/json's unquoteBytes for the inside of a string literal that its
// scanner accepted; it refuses what that scanner refuses (other escapes, raw quotes and
// control characters, \u without four hex digits).
func unquote(s []byte) (string, error) {
	b := make([]byte, 0, len(s)+utf8.UTFMax)

	for r := 0; r < len(s); {
		c := s[r]

		switch {
		case c == '\\':
			if r+1 >= len(s) {
				return "", errFast
			}

			switch s[r+1] {
			case '"', '\\', '/':
				b = append(b, s[r+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				if rr < 0 {
					return "", errFast
				}

				r += 6

				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)

						continue
					}

					rr = unicode.ReplacementChar
				}

				b = utf8.AppendRune(b, rr)

				continue
			default:
				return "", errFast
			}

			r += 2

		case c == '"' || c < ' ':
			return "", errFast

		case c < utf8.RuneSelf:
			b = append(b, c)
			r++

		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr) // an invalid byte decodes as U+FFFD, as in encoding/json
		}
	}

	return string(b), nil
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}

	var r rune

	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}

		r = r*16 + rune(c)
	}

	return r
}

// skipSpace returns the position of the first non-space byte at or after i.
func (d *fastDecoder) skipSpace(i int) int {
	for i < len(d.data) {
		switch d.data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}

	return i
}

// object reads the object starting at i: its members (keys decoded, values as spans) and
// the position after its closing brace.
func (d *fastDecoder) object(i int) ([]member, int, error) {
	if i >= len(d.data) || d.data[i] != '{' {
		return nil, 0, errFast
	}

	i = d.skipSpace(i + 1)
	if i < len(d.data) && d.data[i] == '}' {
		return nil, i + 1, nil
	}

	var members []member

	for {
		keyEnd, err := d.skip(i)
		if err != nil || d.data[i] != '"' {
			return nil, 0, errFast
		}

		key, err := decodeString(d.data[i:keyEnd])
		if err != nil {
			return nil, 0, err
		}

		i = d.skipSpace(keyEnd)
		if i >= len(d.data) || d.data[i] != ':' {
			return nil, 0, errFast
		}

		start := d.skipSpace(i + 1)

		end, err := d.skip(start)
		if err != nil {
			return nil, 0, err
		}

		members = append(members, member{key: key, start: start, end: end})

		var closed bool
		if i, closed, err = d.afterValue(end, '}'); err != nil || closed {
			return members, i, err
		}
	}
}

// array reads the array starting at i: its elements' spans and the position after it.
func (d *fastDecoder) array(i int) ([][2]int, int, error) {
	if i >= len(d.data) || d.data[i] != '[' {
		return nil, 0, errFast
	}

	i = d.skipSpace(i + 1)
	if i < len(d.data) && d.data[i] == ']' {
		return nil, i + 1, nil
	}

	var spans [][2]int

	for {
		end, err := d.skip(i)
		if err != nil {
			return nil, 0, err
		}

		spans = append(spans, [2]int{i, end})

		var closed bool
		if i, closed, err = d.afterValue(end, ']'); err != nil || closed {
			return spans, i, err
		}
	}
}

// afterValue reads what follows a member or an element ending at end: a comma (it returns
// where the next one starts) or the closer (it returns the position after it, closed).
func (d *fastDecoder) afterValue(end int, closer byte) (int, bool, error) {
	i := d.skipSpace(end)
	switch {
	case i >= len(d.data):
		return 0, false, errFast
	case d.data[i] == ',':
		return d.skipSpace(i + 1), false, nil
	case d.data[i] == closer:
		return i + 1, true, nil
	}

	return 0, false, errFast
}

// skip returns the position after the value starting at i. It checks only the structure
// needed to find the end; every value is decoded (and so checked) later by its type.
func (d *fastDecoder) skip(i int) (int, error) {
	if i >= len(d.data) {
		return 0, errFast
	}

	switch d.data[i] {
	case '"':
		for j := i + 1; j < len(d.data); j++ {
			switch d.data[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}

		return 0, errFast

	case '{', '[':
		depth := 0

		for j := i; j < len(d.data); j++ {
			switch d.data[j] {
			case '"':
				end, err := d.skip(j)
				if err != nil {
					return 0, err
				}

				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}

		return 0, errFast

	default: // a number or a literal: up to the next delimiter
		j := i
		for j < len(d.data) {
			switch d.data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return 0, errFast
				}

				return j, nil
			}

			j++
		}

		if j == i {
			return 0, errFast
		}

		return j, nil
	}
}
