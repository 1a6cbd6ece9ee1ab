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
	"crypto/sha256"
	"encoding/hex"
	"log"
	"net"
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

	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		log.Fatalf("osmcloud-ferretdb: %v", err)
	}

	log.Printf("osmcloud-ferretdb: stopped")
}
