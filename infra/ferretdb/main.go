// Command osmcloud-ferretdb runs FerretDB (MongoDB wire protocol over SQLite) for the
// osmcloud local stack.
//
// FerretDB cannot be installed with `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`
// (its build-info version check panics when FerretDB itself is the main module), so we
// embed its public package github.com/FerretDB/FerretDB/ferretdb instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
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

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: *listenAddr,
		},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	log.Printf("osmcloud-ferretdb: listening on %s, data in %s", *listenAddr, dir)

	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	log.Printf("osmcloud-ferretdb: stopped")
}
