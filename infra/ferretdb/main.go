// Command osmcloud-ferretdb runs FerretDB (MongoDB wire protocol over SQLite) for the
// osmcloud local stack.
//
// FerretDB cannot be installed with `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`
// (its build-info version check panics when FerretDB itself is the main module), so we
// embed its public package github.com/FerretDB/FerretDB/ferretdb instead.
package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // profiles on -debug-addr only (benchmarks: where FerretDB's CPU goes)
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB itself uses; registered as "sqlite"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	sqliteDir := flag.String("sqlite-dir", "", "directory holding the SQLite databases (required)")
	debugAddr := flag.String("debug-addr", os.Getenv("OSMCLOUD_FERRETDB_DEBUG_ADDR"),
		"if set, serve Go's /debug/pprof/ profiles and /debug/vars (commands per name and collection) on this loopback address")
	flag.Parse()

	// FerretDB allocates several objects per document field it decodes: with Go's default
	// (GOGC=100) the collector took 15% of its CPU in the purge benchmark. A larger heap
	// target trades a few tens of MiB for most of that. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	if *debugAddr != "" {
		commandStats = newCommandCounter()
		go func() { log.Printf("osmcloud-ferretdb: debug server: %v", http.ListenAndServe(*debugAddr, nil)) }()
	}

	if *sqliteDir == "" {
		fmt.Fprintln(os.Stderr, "osmcloud-ferretdb: -sqlite-dir is required")
		os.Exit(2)
	}

	dir, err := filepath.Abs(*sqliteDir)
	if err != nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	// FerretDB itself listens on a private Unix socket; clients reach it through the
	// serializing front end (serialize.go), which gives them MongoDB's single-document atomicity.
	socket := filepath.Join(dir, "ferretdb.sock")
	if len(socket) > 100 { // Unix socket paths are limited to about 108 bytes
		sum := sha256.Sum256([]byte(dir))
		socket = filepath.Join(os.TempDir(), "osmcloud-ferretdb-"+hex.EncodeToString(sum[:6])+".sock")
	}
	_ = os.Remove(socket)

	listener, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			Unix: socket,
		},
		Handler: "sqlite",
		// synchronous(normal): in WAL mode a commit no longer waits for its own fsync; a
		// power loss may undo the last commits, a crash of this process never does. That is
		// the promise of MongoDB's default write concern too (journal flushed every 100 ms).
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(normal)",
	})
	if err != nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	log.Printf("osmcloud-ferretdb: listening on %s (writes serialized per collection), data in %s", *listenAddr, dir)

	go serveSerialized(listener, socket)
	go func() {
		<-ctx.Done()
		listener.Close()
	}()

	go indexIDPaths(ctx, dir)

	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	log.Printf("osmcloud-ferretdb: stopped")
}

// indexIDPaths works around a FerretDB 1.24 SQLite backend mismatch: each collection's
// unique index is created on the expression _ferretdb_sjson->"_id", but lookups by _id
// (find, update, delete) filter on _ferretdb_sjson->'$._id'. SQLite uses an expression
// index only for the identical expression, so every lookup by _id scanned the whole table
// (EXPLAIN QUERY PLAN: SCAN): an update by _id cost 1.6 ms of CPU on a 1-document
// collection and 16 ms on a 2,000-document one. This loop adds, for every table, an index
// on the expression the lookups use (1.4 ms at 2,000 documents). FerretDB does not know
// about these indexes and does not need to: SQLite's planner picks them up, and they go
// away with their table. FerretDB opens its databases with busy_timeout(10000), so the
// short CREATE INDEX never makes one of its writes fail.
func indexIDPaths(ctx context.Context, dir string) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			if err := indexDatabase(ctx, file); err != nil {
				log.Printf("osmcloud-ferretdb: indexing %s: %v (will retry)", filepath.Base(file), err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// indexDatabase adds the missing indexes of one database (a read when none is missing):
//   - per table, the _id path index (see indexIDPaths);
//   - per single-field index FerretDB made, a partial index of the field's integer values
//     (how sjson stores dates), which answers the date ranges pushdown.go pushes down;
//   - per top-level field of an index FerretDB made, an index of the documents holding an
//     array in that field: our SQLite pushdown (patch 0001, _added/.../sqlite/pushdown.go)
//     answers {f: "s"} from f's index plus those documents (they may match too), which this index
//     makes a lookup instead of a scan. It is partial (only arrays are entered), so writes
//     of documents without arrays there pay no index update for it.
func indexDatabase(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
		WHERE type IN ('table', 'index') AND tbl_name NOT LIKE '\_ferretdb%' ESCAPE '\'`)
	if err != nil {
		return err
	}
	existing := map[string]bool{}
	wanted := map[string]string{} // index name -> CREATE INDEX statement
	for rows.Next() {
		var kind, name, table, stmt string
		if err := rows.Scan(&kind, &name, &table, &stmt); err != nil {
			rows.Close()
			return err
		}
		if strings.ContainsRune(table, '"') {
			continue
		}
		if kind == "table" {
			wanted[table+"__id_path"] = fmt.Sprintf(
				`CREATE UNIQUE INDEX IF NOT EXISTS "%s__id_path" ON "%s" (_ferretdb_sjson->'$._id')`, table, table)
			continue
		}
		existing[name] = true
		fields := indexedField.FindAllStringSubmatch(stmt, -1)
		for _, m := range fields {
			array := fmt.Sprintf(`json_type(_ferretdb_sjson->"%s")`, m[1])
			wanted[table+"__arrays_"+m[1]] = fmt.Sprintf(`CREATE INDEX IF NOT EXISTS "%s__arrays_%s" ON "%s" (%s) WHERE %s = 'array'`,
				table, m[1], table, array, array)
		}
		if len(fields) == 1 && fields[0][1] != "_id" && strings.Count(stmt, "_ferretdb_sjson->") == 1 {
			// a single-field index may serve date ranges ({f: {$lte: date}}, pushdown.go's
			// dateRange): the field's number where it holds an integer (sjson's dates)
			f := fields[0][1]
			wanted[table+"__dates_"+f] = fmt.Sprintf(
				`CREATE INDEX IF NOT EXISTS "%s__dates_%s" ON "%s" (_ferretdb_sjson->>'$.%s') WHERE json_type(_ferretdb_sjson->'$.%s') = 'integer'`,
				table, f, table, f, f)
		}
	}
	rows.Close()
	for name, stmt := range wanted {
		if existing[name] {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// indexedField finds the top-level fields in an index's CREATE statement
// (FerretDB writes them as _ferretdb_sjson->"field", nested ones as ->"a"->"b").
var indexedField = regexp.MustCompile(`_ferretdb_sjson->"([A-Za-z_][A-Za-z0-9_]*)"\s*(?:DESC|ASC)?\s*[,)]`)
