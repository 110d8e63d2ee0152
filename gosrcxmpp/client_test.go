package gosrcxmpp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"io"
	"math/big"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"gosrc.io/xmpp"
)

// TestSetTransport guards the one reflective write the adapter makes into gosrc.io/xmpp.
func TestSetTransport(t *testing.T) {
	xc, err := xmpp.NewClient(&xmpp.Config{
		TransportConfiguration: xmpp.TransportConfiguration{Address: "127.0.0.1:1"},
		Jid:                    "a@b", Credential: xmpp.Password("p"),
	}, xmpp.NewRouter(), func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	tr := newTransport(context.Background(), "127.0.0.1:1", "b", &tls.Config{}, time.Second, func(*inStanza) {})
	if err := setTransport(xc, tr); err != nil {
		t.Fatal(err)
	}
	f := reflect.ValueOf(xc).Elem().FieldByName("transport")
	if f.Elem().Pointer() != reflect.ValueOf(tr).Pointer() {
		t.Fatal("transport field not set")
	}
}

func TestDialRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range map[string]Config{
		"no address":  {JID: "a@b", Password: "p"},
		"domain JID":  {Address: "127.0.0.1:1", JID: "b", Password: "p"},
		"no password": {Address: "127.0.0.1:1", JID: "a@b"},
		"insecure":    {Address: "127.0.0.1:1", JID: "a@b", Password: "p", TLS: &tls.Config{InsecureSkipVerify: true}},
	} {
		if _, err := Dial(ctx, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// fakeServer accepts one connection, answers the stream header with features, and records
// what the client sent.
func fakeServer(t *testing.T, features string) (addr string, sent func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		buf := make([]byte, 4096)
		first := true
		for {
			n, err := r.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
			if first && strings.Contains(string(buf[:n]), "<stream:stream") {
				first = false
				io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"+features)
			}
			if strings.Contains(string(buf[:n]), "<starttls") {
				io.WriteString(c, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
				// Present a certificate the client does not trust.
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{selfSignedForTest(t)}})
				tc.Handshake()
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
}

// TestDialWithoutStartTLSNeverAuthenticates: a server that does not offer STARTTLS, or one
// whose certificate does not verify, never sees SASL.
func TestDialWithoutStartTLSNeverAuthenticates(t *testing.T) {
	for name, features := range map[string]string{
		"no starttls": "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
		"bad cert":    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
	} {
		addr, sent := fakeServer(t, features)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := Dial(ctx, Config{Address: addr, JID: "romeo@localhost", Password: "secret-password", ConnectTimeout: 3 * time.Second})
		cancel()
		if err == nil {
			t.Fatalf("%s: Dial succeeded", name)
		}
		time.Sleep(50 * time.Millisecond)
		if s := sent(); strings.Contains(s, "<auth") || strings.Contains(s, "c2VjcmV0") {
			t.Fatalf("%s: client sent SASL in clear: %q", name, s)
		}
	}
}

// BenchmarkReadStanza measures the stanza capture on a 4 KiB IBB data IQ.
func BenchmarkReadStanza(b *testing.B) {
	doc := `<iq xmlns="jabber:client" type="set" id="i1" from="a@b/c" to="d@e/f"><data xmlns="http://jabber.org/protocol/ibb" seq="1" sid="s">` +
		strings.Repeat("QUJD", 1366) + `</data></iq>`
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		d := xml.NewDecoder(strings.NewReader(doc))
		tok, _ := d.Token()
		if _, err := readStanza(d, tok.(xml.StartElement)); err != nil {
			b.Fatal(err)
		}
	}
}

// selfSignedForTest returns a fresh self-signed certificate for localhost that no client trusts.
func selfSignedForTest(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
