// gosmtp_sink: a discard sink on go-smtp (Debian's
// golang-github-emersion-go-smtp-dev), a peer of smtpwire-sink --discard in
// scripts/bench. It reads every message to its end and throws it away;
// STARTTLS is offered when -cert/-key are given. Prints "ready" once
// listening. Built offline by scripts/bench (GOPATH=/usr/share/gocode,
// GO111MODULE=off).
//
//	gosmtp_sink -listen 127.0.0.1:PORT [-cert FILE -key FILE]
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/emersion/go-smtp"
)

type backend struct{}

func (backend) Login(_ *smtp.ConnectionState, _, _ string) (smtp.Session, error) {
	return nil, smtp.ErrAuthUnsupported
}

func (backend) AnonymousLogin(_ *smtp.ConnectionState) (smtp.Session, error) {
	return &session{}, nil
}

type session struct{}

func (*session) Reset()                                  {}
func (*session) Logout() error                           { return nil }
func (*session) Mail(_ string, _ smtp.MailOptions) error { return nil }
func (*session) Rcpt(_ string) error                     { return nil }
func (*session) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	cert := flag.String("cert", "", "certificate (PEM) for STARTTLS")
	key := flag.String("key", "", "private key (PEM) for STARTTLS")
	flag.Parse()

	s := smtp.NewServer(backend{})
	s.Domain = "gosmtp-sink.example"
	s.MaxMessageBytes = 2 << 30
	s.MaxRecipients = 1000
	s.ReadTimeout = 60 * time.Second
	s.WriteTimeout = 60 * time.Second
	s.AllowInsecureAuth = false
	if *cert != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{c}}
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "ready %s\n", l.Addr())
	if err := s.Serve(l); err != nil {
		log.Fatal(err)
	}
}
