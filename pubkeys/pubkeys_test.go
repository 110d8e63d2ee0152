package pubkeys_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"path"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/pubkeys"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

const (
	romeo  = "romeo@montague.lit/orchard"
	juliet = "juliet@capulet.lit/balcony"
)

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, path.Join("pubkeys", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("goroutine leak: %d before, %d after", before, n)
		}
	})
}

func TestPK11_Vectors(t *testing.T) {
	client := vector(t, "PK-12_client-cert.der")
	user := vector(t, "PK-2_user-cert.der")
	tests := []struct {
		file string
		want pubkeys.Keys
	}{
		{"PK-11_result.xml", pubkeys.Keys{Space: pubkeys.NS, Keys: []pubkeys.KeyInfo{{Name: pubkeys.Name(client), Cert: client}}}},
		{"PK-2_result-with-user-cert.xml", pubkeys.Keys{Space: pubkeys.NS, Keys: []pubkeys.KeyInfo{
			{Name: pubkeys.Name(client), Cert: client}, {JID: "juliet@capulet.lit", Name: pubkeys.Name(user), Cert: user}}}},
		// 0.9: base64 wrapped in lines, a signature, and an OpenPGP key we skip.
		{"PK-11_v0-result.xml", pubkeys.Keys{Space: pubkeys.NSv0, JID: juliet, Keys: []pubkeys.KeyInfo{{Cert: client}}}},
		// Gajim: urn:xmpp:pubkey:2 with a literal "CertificateHash" name.
		{"PK-11_gajim-result.xml", pubkeys.Keys{Space: pubkeys.NSGajim, Keys: []pubkeys.KeyInfo{{Name: "CertificateHash", Cert: client}}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw := vector(t, tc.file)
			got, err := pubkeys.ParseKeys(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			out, err := pubkeys.MarshalKeys(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := pubkeys.ParseKeys(out)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got.Keys {
				if got.Keys[i].Name == "" {
					got.Keys[i].Name = pubkeys.Name(got.Keys[i].Cert)
				}
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	// Our own encoding is byte-exact with the vector.
	out, _ := pubkeys.MarshalKeys(pubkeys.Keys{Keys: []pubkeys.KeyInfo{{Cert: client}}})
	if want := strings.TrimSpace(string(vector(t, "PK-11_result.xml"))); string(out) != want {
		t.Errorf("MarshalKeys:\n got %s\nwant %s", out, want)
	}
}

func TestPK11_Rejects(t *testing.T) {
	// 17 KiB of zero bytes in Base64: over the 16 KiB certificate bound.
	oversize := strings.Repeat("A", (17<<10)/3*4)
	cases := map[string]string{
		"bad-base64":       string(vector(t, "PK-11_reject-bad-base64.xml")),
		"not-certificate":  string(vector(t, "PK-11_reject-not-a-certificate.xml")),
		"two-certs":        string(vector(t, "PK-11_reject-two-certs.xml")),
		"nine-keys":        string(vector(t, "PK-11_reject-nine-keys.xml")),
		"comment":          "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><!-- x --></pubkeys>",
		"dtd":              "<!DOCTYPE p><pubkeys xmlns='urn:xmpp:tmp:pubkey'/>",
		"entity":           "<pubkeys xmlns='urn:xmpp:tmp:pubkey' jid='&x;'/>",
		"wrong-ns":         "<pubkeys xmlns='urn:xmpp:pubkey:1'/>",
		"no-cert":          "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><name>x</name></keyinfo></pubkeys>",
		"foreign-child":    "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><x509cert xmlns='urn:other'>QUJD</x509cert></keyinfo></pubkeys>",
		"oversize-cert":    "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><x509cert>" + oversize + "</x509cert></keyinfo></pubkeys>",
		"base64-padding":   "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><x509cert>=AAA</x509cert></keyinfo></pubkeys>",
		"base64-inner-pad": "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><x509cert>BBBB=CCC</x509cert></keyinfo></pubkeys>",
		"base64-nbsp":      "<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo><x509cert>QUJD\u00a0</x509cert></keyinfo></pubkeys>",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := pubkeys.ParseKeys([]byte(in))
			var pe *pubkeys.Error
			if !errors.As(err, &pe) || pe.Condition != "bad-request" {
				t.Errorf("ParseKeys = %v, want bad-request", err)
			}
		})
	}
}

func TestPK6_Request(t *testing.T) {
	client := vector(t, "PK-12_client-cert.der")
	r, err := pubkeys.ParseRequest(vector(t, "PK-6_request-fingerprint.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := pubkeys.Request{Space: pubkeys.NS, Fingerprints: []pubkeys.Fingerprint{{Algo: "sha-256", Value: pubkeys.Name(client)}}}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	out, err := pubkeys.MarshalRequest(r)
	if err != nil || string(out) != strings.TrimSpace(string(vector(t, "PK-6_request-fingerprint.xml"))) {
		t.Errorf("MarshalRequest = %s, %v", out, err)
	}
	for _, f := range []string{"PK-11_request.xml", "PK-11_gajim-request.xml"} {
		if _, err := pubkeys.ParseRequest(vector(t, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, bad := range []string{
		"<pubkeys xmlns='urn:xmpp:tmp:pubkey'><fingerprint algo='sha-256'>xyz</fingerprint></pubkeys>",
		"<pubkeys xmlns='urn:xmpp:tmp:pubkey'><keyinfo/></pubkeys>",
		"<pubkeys xmlns='urn:xmpp:tmp:pubkey'>" + strings.Repeat("<fingerprint>00</fingerprint>", 9) + "</pubkeys>",
	} {
		if _, err := pubkeys.ParseRequest([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// streams opens an xmlstream pair over net.Pipe.
func streams(t *testing.T) (a, b *xmlstream.Stream) {
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return open(t, c1, c2)
}

func open(t *testing.T, c1, c2 net.Conn) (a, b *xmlstream.Stream) {
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
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestServeFetch runs the exchange inside an end-to-end stream (PK-1, XTLS-19/21), in our
// namespace and in the two legacy ones, and with a fingerprint filter (PK-6).
func TestServeFetch(t *testing.T) {
	noLeaks(t)
	a, b := streams(t)
	client := vector(t, "PK-12_client-cert.der")
	user := vector(t, "PK-2_user-cert.der")
	defer pubkeys.Serve(b, pubkeys.KeyInfo{Cert: client}, pubkeys.KeyInfo{JID: "juliet@capulet.lit", Cert: user})()
	ctx := context.Background()
	keys, err := pubkeys.Fetch(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []pubkeys.KeyInfo{{Name: pubkeys.Name(client), Cert: client}, {JID: "juliet@capulet.lit", Name: pubkeys.Name(user), Cert: user}}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	keys, err = pubkeys.Fetch(ctx, a, juliet, pubkeys.Fingerprint{Algo: "sha-256", Value: strings.ToUpper(pubkeys.Name(user))})
	if err != nil || len(keys) != 1 || keys[0].JID != "juliet@capulet.lit" {
		t.Errorf("filtered: %v %v", keys, err)
	}
	keys, err = pubkeys.Fetch(ctx, a, "", pubkeys.Fingerprint{Algo: "sha-256", Value: strings.Repeat("00", 32)})
	if err != nil || len(keys) != 0 {
		t.Errorf("no match: %v %v", keys, err)
	}
	for _, f := range []string{"PK-11_gajim-request.xml", "PK-11_request.xml"} {
		res, err := a.Request(ctx, "", "get", bytes.TrimSpace(vector(t, f)))
		if err != nil {
			t.Fatal(err)
		}
		k, err := pubkeys.ParseKeys(res)
		if err != nil || len(k.Keys) != 2 {
			t.Fatalf("%s: %v %v", f, k, err)
		}
		req, _ := pubkeys.ParseRequest(vector(t, f))
		if k.Space != req.Space {
			t.Errorf("answered %s in %s", req.Space, k.Space)
		}
	}
	if _, err := a.Request(ctx, "", "set", []byte("<pubkeys xmlns='urn:xmpp:tmp:pubkey'/>")); err == nil {
		t.Error("set accepted")
	}
}

type stanzaErr interface {
	StanzaError() (typ, cond string, app xml.Name, text string)
}

// TestXTLS20_RefuseOnC2S: over the server connection the request is refused with
// not-acceptable + security-required, in every namespace, and the vector matches.
func TestXTLS20_RefuseOnC2S(t *testing.T) {
	noLeaks(t)
	n := xmpptest.NewNetwork(1)
	r, j := n.Party(romeo), n.Party(juliet)
	defer r.Close()
	defer j.Close()
	remove := pubkeys.Refuse(j)
	var vec struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	}
	if err := xml.Unmarshal(vector(t, "XTLS-20_c2s-refusal-error.xml"), &vec); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"PK-11_request.xml", "PK-11_gajim-request.xml"} {
		_, err := r.Request(context.Background(), juliet, "get", bytes.TrimSpace(vector(t, f)))
		var se stanzaErr
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v", f, err)
		}
		typ, cond, app, _ := se.StanzaError()
		if typ != vec.Type || cond != vec.Conds[0].XMLName.Local || app != vec.Conds[1].XMLName {
			t.Errorf("%s: %s %s %v, want the vector's %+v", f, typ, cond, app, vec)
		}
	}
	_, err := r.Request(context.Background(), juliet, "get", []byte("<pubkeys xmlns='urn:xmpp:pubkey:0'/>"))
	var se stanzaErr
	if !errors.As(err, &se) {
		t.Fatalf("v0: %v", err)
	}
	if _, cond, _, _ := se.StanzaError(); cond != "not-acceptable" {
		t.Errorf("v0: %v", err)
	}
	remove()
	_, err = r.Request(context.Background(), juliet, "get", []byte("<pubkeys xmlns='urn:xmpp:tmp:pubkey'/>"))
	if errors.As(err, &se) {
		if _, cond, _, _ := se.StanzaError(); cond != "service-unavailable" {
			t.Errorf("after remove: %v", err)
		}
	} else {
		t.Errorf("after remove: %v", err)
	}
}

func selfSigned(t *testing.T, cn string) tls.Certificate {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// TestPK12_OverTLS: TLS 1.3 with client certificates over net.Pipe, the XML stream inside,
// pubkeys fetched both ways and checked against the TLS peer certificates; a peer returning a
// certificate other than its TLS one is caught.
func TestPK12_OverTLS(t *testing.T) {
	noLeaks(t)
	rc, jc := selfSigned(t, romeo), selfSigned(t, juliet)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	// Pinning is xtls's job; here any certificate is accepted and PK-12 is what is tested.
	accept := func(tls.ConnectionState) error { return nil }
	client := tls.Client(c1, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{rc},
		InsecureSkipVerify: true, VerifyConnection: accept})
	server := tls.Server(c2, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{jc},
		ClientAuth: tls.RequireAnyClientCert, VerifyConnection: accept})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	a, b := open(t, client, server)
	defer pubkeys.Serve(a, pubkeys.KeyInfo{Cert: rc.Certificate[0]})()
	rmB := pubkeys.Serve(b, pubkeys.KeyInfo{Cert: jc.Certificate[0]})
	ctx := context.Background()

	keys, err := pubkeys.Fetch(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	peer := client.ConnectionState().PeerCertificates[0].Raw
	got, others, err := pubkeys.VerifyPeer(keys, peer)
	if err != nil || !bytes.Equal(got.Cert, jc.Certificate[0]) || len(others) != 0 {
		t.Fatalf("VerifyPeer: %v", err)
	}
	keys, err = pubkeys.Fetch(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pubkeys.VerifyPeer(keys, server.ConnectionState().PeerCertificates[0].Raw); err != nil {
		t.Fatalf("responder side: %v", err)
	}

	// Juliet now claims another certificate than the one she used in TLS.
	rmB()
	other := selfSigned(t, juliet)
	defer pubkeys.Serve(b, pubkeys.KeyInfo{Cert: other.Certificate[0]})()
	keys, err = pubkeys.Fetch(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pubkeys.VerifyPeer(keys, peer); !errors.Is(err, pubkeys.ErrPeerMismatch) {
		t.Errorf("VerifyPeer accepted a certificate that is not the TLS one: %v", err)
	}
	if _, _, err := pubkeys.VerifyPeer(append(keys, pubkeys.KeyInfo{Cert: peer}), peer); !errors.Is(err, pubkeys.ErrPeerMismatch) {
		t.Errorf("VerifyPeer accepted a second client certificate: %v", err)
	}
	if _, _, err := pubkeys.VerifyPeer(nil, nil); err == nil {
		t.Error("no TLS certificate accepted")
	}
}

// TestXTLS20_GajimCapturedRequest: the request Gajim 1.5.3 really sent over the server
// connection (testvectors/captured) is refused there.
func TestXTLS20_GajimCapturedRequest(t *testing.T) {
	noLeaks(t)
	raw, err := fs.ReadFile(testvectors.FS, "captured/trace-gajim153-xtls-s5b.xml")
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, "type='get'") && strings.Contains(line, "urn:xmpp:pubkey:2") {
			var iq struct {
				Inner []byte `xml:",innerxml"`
			}
			if err := xml.Unmarshal([]byte(line), &iq); err != nil {
				t.Fatal(err)
			}
			payload = iq.Inner
			break
		}
	}
	if payload == nil {
		t.Fatal("no captured Gajim pubkeys request")
	}
	if r, err := pubkeys.ParseRequest(payload); err != nil || r.Space != pubkeys.NSGajim {
		t.Fatalf("ParseRequest(%s) = %+v, %v", payload, r, err)
	}
	n := xmpptest.NewNetwork(2)
	g, j := n.Party("interop-e@localhost/gajim"), n.Party(juliet)
	defer g.Close()
	defer j.Close()
	defer pubkeys.Refuse(j)()
	_, err = g.Request(context.Background(), juliet, "get", payload)
	var se stanzaErr
	if !errors.As(err, &se) {
		t.Fatalf("%v", err)
	}
	if _, cond, app, _ := se.StanzaError(); cond != "not-acceptable" || app.Local != "security-required" {
		t.Errorf("got %v", err)
	}
}
