// go-smtp (github.com/emersion/go-smtp, Debian's golang-github-emersion-go-smtp-dev)
// on the canned bytes of bench/bench_side_by_side.cpp. Built offline by
// bench/peers/inmem/run (GO111MODULE=off, GOPATH=/usr/share/gocode) with
// gosmtp_export.go overlaid into the go-smtp package, which exports its
// command-line parser for the "command parse" row.
//
// Usage: gosmtp_bench CANNED_DIR REPS MIN_SECONDS_PER_REP
// Prints one JSON object per row: {"row", "ns": [per-rep ns/op...], "note"}.
// Times are process CPU time (getrusage), so the garbage collector's work on
// the other core counts, as it would in a server.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	smtp "github.com/emersion/go-smtp"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op (after one warm-up call whose result is checked) in
// repetitions of at least minSec CPU seconds and returns ns/op per rep.
func measure(reps int, minSec float64, op func() bool) []float64 {
	if !op() {
		return nil
	}
	out := make([]float64, 0, reps)
	for r := 0; r < reps; r++ {
		iters := 0
		t0 := cpuNow()
		var el time.Duration
		for batch := 1; ; batch *= 2 {
			for k := 0; k < batch; k++ {
				op()
			}
			iters += batch
			el = cpuNow() - t0
			if el.Seconds() >= minSec {
				break
			}
		}
		out = append(out, float64(el.Nanoseconds())/float64(iters))
	}
	return out
}

// fakeConn is a net.Conn over canned input; writes are counted and dropped.
type fakeConn struct {
	r       *bytes.Reader
	written int
	closed  chan struct{}
}

type fakeAddr struct{}

func (fakeAddr) Network() string { return "tcp" }
func (fakeAddr) String() string  { return "192.0.2.1:25" }

func newFakeConn(in []byte) *fakeConn {
	return &fakeConn{r: bytes.NewReader(in), closed: make(chan struct{})}
}
func (c *fakeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *fakeConn) Write(b []byte) (int, error) { c.written += len(b); return len(b), nil }
func (c *fakeConn) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}
func (c *fakeConn) LocalAddr() net.Addr              { return fakeAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return fakeAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// chanListener hands out the conns pushed into it.
type chanListener struct{ conns chan net.Conn }

func (l *chanListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, io.EOF
	}
	return c, nil
}
func (l *chanListener) Close() error   { return nil }
func (l *chanListener) Addr() net.Addr { return fakeAddr{} }

type backend struct{ content *int }
type session struct{ content *int }

func (b backend) Login(*smtp.ConnectionState, string, string) (smtp.Session, error) {
	return nil, smtp.ErrAuthUnsupported
}
func (b backend) AnonymousLogin(*smtp.ConnectionState) (smtp.Session, error) {
	return session{b.content}, nil
}
func (s session) Reset()                              {}
func (s session) Logout() error                       { return nil }
func (s session) Mail(string, smtp.MailOptions) error { return nil }
func (s session) Rcpt(string) error                   { return nil }
func (s session) Data(r io.Reader) error {
	n, err := io.Copy(ioutil.Discard, r)
	*s.content += int(n)
	return err
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: gosmtp_bench CANNED_DIR REPS MIN_SECONDS")
		os.Exit(2)
	}
	dir := os.Args[1]
	reps, _ := strconv.Atoi(os.Args[2])
	minSec, _ := strconv.ParseFloat(os.Args[3], 64)
	read := func(name string) []byte {
		b, err := ioutil.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return b
	}
	emit := func(row string, ns []float64, note string) {
		o := map[string]interface{}{"row": row, "ns": ns, "note": note}
		if ns == nil {
			o = map[string]interface{}{"row": row, "skipped": "result check failed: " + note}
		}
		b, _ := json.Marshal(o)
		fmt.Println(string(b))
	}

	// command parse: go-smtp's own parser (parseCmd, exported by the
	// overlay) on every line, then for MAIL/RCPT the split and parseArgs
	// that its handleMail does. go-smtp checks no address syntax.
	commands := read("commands.txt")
	lines := strings.SplitAfter(string(commands), "\n")
	lines = lines[:len(lines)-1]
	emit("command parse", measure(reps, minSec, func() bool {
		ok := 0
		for _, l := range lines {
			cmd, arg, err := smtp.BenchParseCmd(l)
			if err != nil {
				continue
			}
			if cmd == "MAIL" || cmd == "RCPT" {
				f := strings.Split(strings.Trim(arg[strings.IndexByte(arg, ':')+1:], " "), " ")
				if _, err := smtp.BenchParseArgs(f[1:]); err != nil {
					continue
				}
			}
			ok++
		}
		return ok == len(lines)
	}), "parseCmd + (MAIL/RCPT) strings.Split + parseArgs, go-smtp 0.12.1: no address or parameter-value validation")

	// reply parse: net/textproto Reader.ReadResponse, which go-smtp's client
	// uses for every reply (it joins multi-line text with \n).
	replies := func(name string, want int) func() bool {
		data := read(name)
		return func() bool {
			r := textproto.NewReader(bufio.NewReader(bytes.NewReader(data)))
			n := 0
			for {
				_, _, err := r.ReadResponse(250)
				if err == io.EOF {
					break
				}
				if err != nil {
					return false
				}
				n++
			}
			return n == want
		}
	}
	ehlo := read("ehlo_replies.txt")
	emit("reply parse ehlo", measure(reps, minSec, replies("ehlo_replies.txt", bytes.Count(ehlo, []byte("\n"))/10)),
		"net/textproto ReadResponse per reply (go-smtp client's reply reader), bufio over the bytes")
	ok := read("ok_replies.txt")
	emit("reply parse 250", measure(reps, minSec, replies("ok_replies.txt", bytes.Count(ok, []byte("\n")))),
		"net/textproto ReadResponse per reply (go-smtp client's reply reader), bufio over the bytes")

	// DATA decode: the DotReader that go-smtp's server wraps for DATA,
	// copied into one buffer.
	decode := func(wireName, emlName string) func() bool {
		// DotReader delivers lines ending in LF only (net/textproto).
		w, eml := read(wireName), bytes.ReplaceAll(read(emlName), []byte("\r\n"), []byte("\n"))
		out := bytes.NewBuffer(make([]byte, 0, len(eml)+4096))
		return func() bool {
			out.Reset()
			r := textproto.NewReader(bufio.NewReader(bytes.NewReader(w)))
			if _, err := io.Copy(out, r.DotReader()); err != nil {
				return false
			}
			return bytes.Equal(out.Bytes(), eml)
		}
	}
	note := "net/textproto DotReader (go-smtp server's DATA reader; it also turns CRLF into LF) into one buffer"
	emit("DATA decode 64 KiB", measure(reps, minSec, decode("msg_64k.wire", "msg_64k.eml")), note)
	emit("DATA decode 1 MiB", measure(reps, minSec, decode("msg_1m.wire", "msg_1m.eml")), note)

	// DATA encode: the DotWriter that go-smtp's client Data() returns.
	encode := func(emlName, wireName string) func() bool {
		eml, w := read(emlName), read(wireName)
		out := bytes.NewBuffer(make([]byte, 0, len(w)+4096))
		return func() bool {
			out.Reset()
			tw := textproto.NewWriter(bufio.NewWriter(out))
			dw := tw.DotWriter()
			if _, err := dw.Write(eml); err != nil {
				return false
			}
			if err := dw.Close(); err != nil {
				return false
			}
			return bytes.Equal(out.Bytes(), w)
		}
	}
	note = "net/textproto DotWriter (go-smtp client's Data writer) into one buffer"
	emit("DATA encode 64 KiB", measure(reps, minSec, encode("msg_64k.eml", "msg_64k.wire")), note)
	emit("DATA encode 1 MiB", measure(reps, minSec, encode("msg_1m.eml", "msg_1m.wire")), note)

	// server session: a go-smtp Server fed the canned client stream over an
	// in-memory net.Conn; an op ends when the server closes the conn.
	clientBytes := read("session_client.txt")
	msg4k := read("msg_4k.eml")
	content := 0
	srv := smtp.NewServer(backend{&content})
	srv.Domain = "mx.example.com"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 32 << 20
	l := &chanListener{conns: make(chan net.Conn)}
	go srv.Serve(l)
	emit("server session", measure(reps, minSec, func() bool {
		content = 0
		c := newFakeConn(clientBytes)
		l.conns <- c
		<-c.closed
		return content == len(msg4k)-bytes.Count(msg4k, []byte("\n")) && c.written > 0
	}), "smtp.Server over an in-memory net.Conn (Serve goroutine, bufio/textproto), backend discards content")

	// client delivery: smtp.NewClient over an in-memory net.Conn holding the
	// canned server replies; Hello, Mail, 5 Rcpt, Data, write, Close, Quit
	// (go-smtp's client is lock-step: no PIPELINING).
	serverBytes := read("session_server.txt")
	rcpts := []string{"r1@example.com", "r2@example.com", "r3@example.com", "r4@example.com", "r5@example.com"}
	emit("client delivery", measure(reps, minSec, func() bool {
		conn := newFakeConn(serverBytes)
		c, err := smtp.NewClient(conn, "mx.example.com")
		if err != nil {
			return false
		}
		if c.Hello("client.example.org") != nil || c.Mail("a@example.org", nil) != nil {
			return false
		}
		for _, r := range rcpts {
			if c.Rcpt(r) != nil {
				return false
			}
		}
		w, err := c.Data()
		if err != nil {
			return false
		}
		if _, err := w.Write(msg4k); err != nil || w.Close() != nil {
			return false
		}
		return c.Quit() == nil && conn.written > len(msg4k)
	}), "smtp.Client over an in-memory net.Conn (lock-step, textproto)")
}
