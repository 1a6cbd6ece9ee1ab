// osmcloud: checks fast_unmarshal.go's contract against FerretDB's original decoder
// (unmarshalSlow): the same document, or an error. Run by infra/ferretdb/build.sh --test.

package sjson

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

var stringPieces = []string{
	"", "a", "plain text", `quote " inside`, `back\slash`, "tab\there", "new\nline", "\x01ctl",
	"ünïcödé", "кириллица", "日本語", "emoji 🗺️", "\u2028sep", "bad utf8 \xff\xfe", "\xc3", "</script>",
	`{"type":"file-deleted","data":{"name":"a\"b"}}`, "1.5", "null", "true",
}

type docGen struct{ r *rand.Rand }

func (g docGen) str() string {
	var b strings.Builder
	for n := g.r.Intn(4); n >= 0; n-- {
		b.WriteString(stringPieces[g.r.Intn(len(stringPieces))])
	}

	return b.String()
}

func (g docGen) key(i int) string {
	names := []string{"_id", "user_id", "type", "name", "size", "head", "ü_key", "a.b", "x y", "deleted"}
	return fmt.Sprintf("%s%d", names[g.r.Intn(len(names))], i)
}

func (g docGen) value(depth int) any {
	n := 12
	if depth > 3 {
		n = 10 // no more nesting
	}

	switch g.r.Intn(n) {
	case 0:
		return g.str()
	case 1:
		floats := []float64{0, math.Copysign(0, -1), 1.5, -2.25e-300, 1e21, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64}
		return floats[g.r.Intn(len(floats))] * float64(g.r.Intn(3)-1)
	case 2:
		return int32(g.r.Int63n(1<<32) - 1<<31)
	case 3:
		return g.r.Int63() - g.r.Int63()
	case 4:
		return g.r.Intn(2) == 1
	case 5:
		return time.UnixMilli(g.r.Int63n(1<<42) - 1<<41)
	case 6:
		var id types.ObjectID
		g.r.Read(id[:])

		return id
	case 7:
		b := make([]byte, g.r.Intn(20))
		g.r.Read(b)

		return types.Binary{B: b, Subtype: types.BinarySubtype(g.r.Intn(6))}
	case 8:
		return types.Regex{Pattern: g.str(), Options: []string{"", "i", "ims"}[g.r.Intn(3)]}
	case 9:
		if g.r.Intn(2) == 0 {
			return types.Null
		}

		return types.Timestamp(g.r.Uint64())
	case 10:
		return g.doc(depth + 1)
	default:
		arr := types.MakeArray(0)
		for i := g.r.Intn(5); i > 0; i-- {
			arr.Append(g.value(depth + 1))
		}

		return arr
	}
}

func (g docGen) doc(depth int) *types.Document {
	doc := types.MakeDocument(0)
	for i := g.r.Intn(8); i > 0; i-- {
		doc.Set(g.key(i), g.value(depth))
	}

	return doc
}

// slow runs the original decoder, turning a panic into an error.
func slow(data []byte) (doc *types.Document, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()

	return unmarshalSlow(data)
}

func checkSame(t *testing.T, data []byte, mustDecode bool) {
	t.Helper()

	fast, fastErr := fastUnmarshal(data)
	want, slowErr := slow(data)

	if mustDecode && fastErr != nil {
		t.Fatalf("fast path refused a document the original decodes (%v): %q", slowErr, data)
	}

	if fastErr != nil {
		return // the fallback decides: fine whatever the original says
	}

	if slowErr != nil {
		t.Fatalf("fast path decoded what the original refuses (%v): %q", slowErr, data)
	}

	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("documents differ for %q:\nfast %#v\nslow %#v", data, fast, want)
	}
}

func TestFastUnmarshalMatchesOriginal(t *testing.T) {
	g := docGen{rand.New(rand.NewSource(1))}

	for i := 0; i < 20000; i++ {
		doc := g.doc(0)

		data, err := Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}

		// escaped or non-UTF-8 strings go through encoding/json, but the fast path takes them
		checkSame(t, data, true)
	}
}

func TestFastUnmarshalOnCorruptedDocuments(t *testing.T) {
	g := docGen{rand.New(rand.NewSource(2))}
	noise := []byte(`{}[]",:0123456789.-+eEtrufalsn \\"xyz`)

	for i := 0; i < 200000; i++ {
		data, err := Marshal(g.doc(0))
		if err != nil {
			t.Fatal(err)
		}

		for n := 1 + g.r.Intn(3); n > 0 && len(data) > 0; n-- {
			at := g.r.Intn(len(data))
			switch g.r.Intn(3) {
			case 0:
				data = append(data[:at:at], data[at+1:]...)
			case 1:
				data = append(data[:at:at], append([]byte{noise[g.r.Intn(len(noise))]}, data[at:]...)...)
			default:
				data[at] = noise[g.r.Intn(len(noise))]
			}
		}

		checkSame(t, data, false)
	}
}

func TestFastUnmarshalEdgeCases(t *testing.T) {
	schemaA := `{"$k":["a"],"p":{"a":{"t":"int"}}}`
	for _, c := range []struct {
		data   string
		decode bool // the fast path must decode it
	}{
		{`{"$s":` + schemaA + `,"a":1}`, true},
		{` { "$s" : ` + schemaA + ` , "a" : 1 }`, true},
		{`{"$s":` + schemaA + `,"a":1} `, false},
		{`{"a":1,"$s":` + schemaA + `}`, true},
		{`{"$s":` + schemaA + `,"a":null}`, true},
		{`{"$s":` + schemaA + `,"a":1,"a":2}`, false},
		{`{"$s":` + schemaA + `,"$s":` + schemaA + `,"a":1}`, false},
		{`{"$s":` + schemaA + `,"a":+1}`, false},
		{`{"$s":` + schemaA + `,"a":1.0}`, false},
		{`{"$s":` + schemaA + `,"a":2147483648}`, false},
		{`{"$s":` + schemaA + `,"a":"1"}`, false},
		{`{"$s":` + schemaA + `,"a":1}x`, false},
		{`{"$s":` + schemaA + `,"b":1}`, false},
		{`{"$s":{"$k":[],"p":{}}}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"object","$s":{"$k":[],"p":{}}}}},"d":{}}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"array","i":[]}}},"d":[]}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"array"}}},"d":[]}`, false},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"double"}}},"d":1e400}`, false},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"double"}}},"d":.5}`, false},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"string"}}},"d":"a\u00e9\ud83d\ude00\"b"}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"string"}}},"d":"\ud800"}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"string","x":1}}},"d":"a"}`, false},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"binData","s":0}}},"d":"AAE="}`, true},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"binData"}}},"d":"AAE="}`, false},
		{`{"$s":{"$k":["d"],"p":{"d":{"t":"null"}}},"d":1}`, false},
		{`[1]`, false},
		{`null`, false},
		{``, false},
	} {
		checkSame(t, []byte(c.data), c.decode)
	}
}

func benchDoc() []byte {
	doc := types.MakeDocument(0)
	doc.Set("_id", "7c1e0c8f0e0b4d0c9d9b7f6a5e4d3c2b")
	doc.Set("user_id", "bench-1a2b3c4d")
	doc.Set("type", "OSM_NOTES")
	doc.Set("name", "bench/12345.osn")
	doc.Set("blob_key", "users/bench-1a2b3c4d/7c1e0c8f0e0b4d0c9d9b7f6a5e4d3c2b")
	doc.Set("size", int64(16))
	doc.Set("updated_ms", int64(1764000000000))
	doc.Set("deleted", false)
	doc.Set("created_at", time.UnixMilli(1764000000000))

	return must.NotFail(Marshal(doc))
}

func BenchmarkUnmarshalFast(b *testing.B) {
	data := benchDoc()
	for i := 0; i < b.N; i++ {
		if _, err := fastUnmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalOriginal(b *testing.B) {
	data := benchDoc()
	for i := 0; i < b.N; i++ {
		if _, err := unmarshalSlow(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeStringMatchesEncodingJSON compares string decoding alone with encoding/json on
// literals built from escape fragments: both refuse, or both give the same string.
func TestDecodeStringMatchesEncodingJSON(t *testing.T) {
	pieces := []string{`\`, `\\`, `\"`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\'`, `\x`, `\u`, `\u00e9`, `\u00E9`,
		`\ud83d`, `\ude00`, `\udc00`, `\u12`, `\uzzzz`, `d83d`, `"`, "\t", "\x01", "\xff", "\xc3\xa9", "é", "a", "/", "u"}
	r := rand.New(rand.NewSource(3))

	for i := 0; i < 300000; i++ {
		var b strings.Builder
		b.WriteByte('"')
		for n := r.Intn(6); n >= 0; n-- {
			b.WriteString(pieces[r.Intn(len(pieces))])
		}
		b.WriteByte('"')
		raw := []byte(b.String())

		got, err := decodeString(raw)

		var want string
		wantErr := json.Unmarshal(raw, &want)

		if (err == nil) != (wantErr == nil) || (err == nil && got != want) {
			t.Fatalf("%q: fast %q (%v), encoding/json %q (%v)", raw, got, err, want, wantErr)
		}
	}
}
