package xmlstream_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

func testCert(t *testing.T) tls.Certificate {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// TestXS7_OverTLS runs the stream inside TLS 1.3 (as XTLS does), closes it in order, and then
// uses the TLS connection again: an orderly Close leaves the transport usable (XS-7), so the
// caller can still send close_notify.
func TestXS7_OverTLS(t *testing.T) {
	noLeaks(t)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	// Certificate checks are xtls's job; this test only needs a TLS connection.
	ok := func(tls.ConnectionState) error { return nil }
	client := tls.Client(c1, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{testCert(t)}, InsecureSkipVerify: true, VerifyConnection: ok})
	server := tls.Server(c2, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{testCert(t)}, ClientAuth: tls.RequireAnyClientCert, VerifyConnection: ok})
	a, b := open2(t, client, server)
	ctx := ctxT(t)
	if err := a.Send(ctx, []byte("<message><body>over TLS</body></message>")); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Next(ctx); err != nil || st.From != romeo {
		t.Fatalf("%v %v", st, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Close() }()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// The transport still works after the streams are closed.
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "again" {
			t.Errorf("after close: %q %v", buf, err)
		}
	}()
	if _, err := client.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func open2(t *testing.T, c1, c2 net.Conn) (a, b *xmlstream.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errB error
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, errB = xmlstream.Respond(ctx, c2, juliet, romeo, nil)
	}()
	a, errA := xmlstream.Initiate(ctx, c1, romeo, juliet, nil)
	<-done
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	return a, b
}
