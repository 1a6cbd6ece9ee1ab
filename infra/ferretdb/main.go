// Command osmcloud-ferretdb runs FerretDB (MongoDB wire protocol over SQLite) for the
// osmcloud local stack.
//
// FerretDB cannot be installed with `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`
// (its build-info version check panics when FerretDB itself is the main module), so we
// embed its public package github.com/FerretDB/FerretDB/ferretdb instead.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"crypto/sha256"
	"encoding/hex"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the driver FerretDB itself uses; registered as "sqlite"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on (host:port)")
	sqliteDir := flag.String("sqlite-dir", "", "directory holding the SQLite databases (required)")
	flag.Parse()

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
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
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

// indexDatabase adds the missing _id path indexes of one database (a read when none is missing).
func indexDatabase(ctx context.Context, file string) error {
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT t.name FROM sqlite_master t WHERE t.type = 'table'
		AND t.name NOT LIKE '\_ferretdb%' ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || '__id_path')`)
	if err != nil {
		return err
	}
	var missing []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		missing = append(missing, name)
	}
	rows.Close()
	for _, table := range missing {
		if strings.ContainsRune(table, '"') {
			continue
		}
		q := fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS "%s__id_path" ON "%s" (_ferretdb_sjson->'$._id')`, table, table)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
