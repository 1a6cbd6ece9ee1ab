package main

// FerretDB 1.24 runs an update as "query the documents, change them in Go, write them back"
// without holding anything between the read and the write. Two concurrent updates of one
// document can therefore both read the old version, and one change is lost; a conditional
// update ({_id, used: {$lte: X}} + $inc) is not atomic either. MongoDB guarantees both for a
// single document, and our services rely on it (quota reservations, claims, state machines).
//
// So the local stack does not expose FerretDB directly: this front end speaks the MongoDB wire
// protocol to clients, forwards each message to FerretDB over a Unix socket, and lets only one
// write command per collection run at a time (a write holds its collection's lock from sending
// the request until its reply is back). Reads pass without a lock. That restores MongoDB's
// single-document atomicity for every client, whatever the number of service replicas.

import (
	"encoding/binary"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"
)

const (
	opMsg          = 2013
	headerLen      = 16
	maxMessageSize = 48 * 1024 * 1024
	flagMoreToCome = 1 << 1
)

// Commands that change documents; their first element's value names the collection.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findandmodify": true,
	"createindexes": true, "dropindexes": true, "create": true, "drop": true,
}

type collectionLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (c *collectionLocks) get(name string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	l, ok := c.locks[name]
	if !ok {
		l = &sync.Mutex{}
		c.locks[name] = l
	}
	return l
}

// message is one wire-protocol message, header included.
type message []byte

func (m message) opCode() int32 { return int32(binary.LittleEndian.Uint32(m[12:16])) }

func (m message) flags() uint32 {
	if m.opCode() != opMsg || len(m) < headerLen+4 {
		return 0
	}
	return binary.LittleEndian.Uint32(m[headerLen : headerLen+4])
}

// command returns an OP_MSG's command name and, when its value is a string, the collection
// it names ("" when the message is something else).
func (m message) command() (name, collection string) {
	body := m[headerLen:]
	if m.opCode() != opMsg || len(body) < 4+1+4+2 || body[4] != 0 {
		return "", ""
	}
	doc := body[5:]
	elementType := doc[4]
	rest := doc[5:]
	end := strings.IndexByte(string(rest), 0)
	if end < 0 {
		return "", ""
	}
	name = string(rest[:end])
	value := rest[end+1:]
	if elementType != 0x02 || len(value) < 4 { // the collection name is a BSON string
		return name, ""
	}
	n := int(binary.LittleEndian.Uint32(value[:4]))
	if n < 1 || len(value) < 4+n {
		return name, ""
	}
	return name, string(value[4 : 4+n-1])
}

// writeTarget returns the collection a write command (name, collection: message.command)
// changes, or "" for anything else.
func writeTarget(name, collection string) string {
	if !writeCommands[strings.ToLower(name)] {
		return ""
	}
	if collection == "" {
		return strings.ToLower(name)
	}
	return collection
}

func readMessage(r io.Reader) (message, error) {
	header := make([]byte, headerLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	size := int(binary.LittleEndian.Uint32(header[:4]))
	if size < headerLen || size > maxMessageSize {
		return nil, fmt.Errorf("wire message of %d bytes", size)
	}
	m := make([]byte, size)
	copy(m, header)
	if _, err := io.ReadFull(r, m[headerLen:]); err != nil {
		return nil, err
	}
	return m, nil
}

// relay forwards one request and every reply to it (exhaust replies come flagged moreToCome).
func relay(client, upstream net.Conn, request message) error {
	if _, err := upstream.Write(request); err != nil {
		return err
	}
	if request.flags()&flagMoreToCome != 0 {
		return nil // fire-and-forget write: no reply follows
	}
	for {
		reply, err := readMessage(upstream)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if reply.flags()&flagMoreToCome == 0 {
			return nil
		}
	}
}

func serveClient(client net.Conn, upstreamSocket string, locks *collectionLocks) {
	defer client.Close()
	upstream, err := net.Dial("unix", upstreamSocket)
	if err != nil {
		log.Printf("osmcloud-ferretdb: cannot reach FerretDB: %v", err)
		return
	}
	defer upstream.Close()
	for {
		request, err := readMessage(client)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Printf("osmcloud-ferretdb: client %s: %v", client.RemoteAddr(), err)
			}
			return
		}
		name, collection := request.command()
		var started time.Time
		if commandStats != nil {
			started = time.Now()
		}
		if target := writeTarget(name, collection); target != "" {
			lock := locks.get(target)
			lock.Lock()
			err = relay(client, upstream, request)
			lock.Unlock()
		} else {
			err = relay(client, upstream, request)
		}
		if commandStats != nil {
			commandStats.record(name, collection, time.Since(started))
		}
		if err != nil {
			return
		}
	}
}

// serveSerialized accepts clients on listener until it is closed.
func serveSerialized(listener net.Listener, upstreamSocket string) {
	locks := &collectionLocks{}
	for {
		client, err := listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Printf("osmcloud-ferretdb: accept: %v", err)
			}
			return
		}
		go serveClient(client, upstreamSocket, locks)
	}
}

// commandStats counts commands per name and collection, with the time from request to last
// reply (lock waits included), when the debug server runs: /debug/vars, "commands".
var commandStats *commandCounter

type commandCounter struct {
	calls, micros *expvar.Map
}

func newCommandCounter() *commandCounter {
	m := expvar.NewMap("commands")
	c := &commandCounter{calls: new(expvar.Map).Init(), micros: new(expvar.Map).Init()}
	m.Set("calls", c.calls)
	m.Set("micros", c.micros)
	return c
}

func (c *commandCounter) record(name, collection string, took time.Duration) {
	if name == "" {
		return
	}
	key := name + " " + collection
	c.calls.Add(key, 1)
	c.micros.Add(key, took.Microseconds())
}
