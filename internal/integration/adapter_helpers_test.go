package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/ejabberdtest"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// dialAccount registers a fresh account on the Prosody srv and connects it (dialOn).
func dialAccount(t testing.TB, srv *prosodytest.Server, resource string, mod func(*gosrcxmpp.Config)) *gosrcxmpp.Client {
	t.Helper()
	return dialOn(t, prosodyServer(srv), resource, mod)
}

// dialOn registers a fresh account on srv and connects it through the adapter with the
// server certificate pinned. The client is closed at cleanup. resource may be "".
func dialOn(t testing.TB, srv *server, resource string, mod func(*gosrcxmpp.Config)) *gosrcxmpp.Client {
	t.Helper()
	jid, password := srv.Account(t)
	if resource != "" {
		jid += "/" + resource
	}
	cfg := gosrcxmpp.Config{
		Address:  srv.Addr,
		JID:      jid,
		Password: password,
		TLS:      &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain},
		OnEvent: func(e gosrcxmpp.Event) {
			if e.Kind != gosrcxmpp.Connected {
				t.Logf("%s: %s %s %v", jid, e.Kind, e.JID, e.Err)
			}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v\n%s log:\n%s", jid, err, srv.Name, srv.LogTail())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkGoroutines fails t if, after a short wait, more goroutines run than before (plus
// slack), and prints the stacks that are new.
func checkGoroutines(t testing.TB, before int, slack int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d before, %d after\n%s", before, n, onlyAdapterStacks(string(buf)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func onlyAdapterStacks(all string) string {
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "gosrcxmpp") || strings.Contains(g, "gosrc.io") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestMain stops the shared Prosody and ejabberd (prosodytest.Shared, ejabberdtest.Shared)
// after all tests of the package. It is the package's only TestMain: other files must not
// declare one.
func TestMain(m *testing.M) {
	code := m.Run()
	prosodytest.StopShared()
	ejabberdtest.StopShared()
	os.Exit(code)
}

// rawClient is a minimal hand-written XMPP client (STARTTLS, SASL PLAIN, bind) that can send
// arbitrary bytes, for tests that need stanzas no well-behaved library would produce.
type rawClient struct {
	conn net.Conn
	jid  string // full JID after bind
	rd   *bufio.Reader
	mu   sync.Mutex
	in   []byte
}

// dialRaw registers a fresh account and logs it in with resource "raw".
func dialRaw(t testing.TB, srv *prosodytest.Server) *rawClient {
	t.Helper()
	jid, password := srv.Account(t)
	return dialRawAs(t, srv, jid, password, "raw")
}

// dialRawAs logs the existing account jid in with the given resource.
func dialRawAs(t testing.TB, srv *prosodytest.Server, jid, password, resource string) *rawClient {
	t.Helper()
	user, _, _ := strings.Cut(jid, "@")
	c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	open := "<?xml version='1.0'?><stream:stream to='" + srv.Domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	rc := &rawClient{conn: c, rd: bufio.NewReader(c)}
	io.WriteString(c, open)
	rc.readUntil(t, "</stream:features>")
	io.WriteString(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	rc.readUntil(t, "<proceed")
	tc := tls.Client(c, &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("raw client TLS: %v", err)
	}
	rc.conn, rc.rd = tc, bufio.NewReader(tc)
	io.WriteString(tc, open)
	rc.readUntil(t, "</stream:features>")
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	io.WriteString(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+cred+"</auth>")
	if got := rc.readUntil(t, "/>"); !strings.Contains(got, "<success") {
		t.Fatalf("raw client auth: %s", got)
	}
	io.WriteString(tc, open)
	rc.readUntil(t, "</stream:features>")
	io.WriteString(tc, "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>")
	got := rc.readUntil(t, "</iq>")
	i, j := strings.Index(got, "<jid>"), strings.Index(got, "</jid>")
	if i < 0 || j < i {
		t.Fatalf("raw client bind: %s", got)
	}
	rc.jid = got[i+5 : j]
	c.SetDeadline(time.Time{})
	// Read everything the server sends from now on (so it never blocks on us) and keep the
	// first MiB for received.
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := rc.rd.Read(buf)
			rc.mu.Lock()
			if len(rc.in) < 1<<20 {
				rc.in = append(rc.in, buf[:n]...)
			}
			rc.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return rc
}

// received returns what the server sent after binding (up to 1 MiB).
func (rc *rawClient) received() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return string(rc.in)
}

func (rc *rawClient) readUntil(t testing.TB, want string) string {
	t.Helper()
	var b strings.Builder
	for !strings.Contains(b.String(), want) {
		by, err := rc.rd.ReadByte()
		if err != nil {
			t.Fatalf("raw client: reading until %q: %v (got %q)", want, err, b.String())
		}
		b.WriteByte(by)
	}
	return b.String()
}

// send writes s to the server as it is.
func (rc *rawClient) send(t testing.TB, s string) {
	t.Helper()
	rc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(rc.conn, s); err != nil {
		t.Fatalf("raw client send: %v", err)
	}
}

// cutProxy is a loopback TCP proxy in front of a server that records what each client
// connection sent and can cut all connections at once.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []*proxiedConn
	wg     sync.WaitGroup
}

type proxiedConn struct {
	client, server net.Conn
	frozen         atomic.Bool // drop traffic both ways without closing
	mu             sync.Mutex
	sent           []byte // client → server bytes (the first 64 KiB)
}

func (p *proxiedConn) clientBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.sent...)
}

func newCutProxy(t testing.TB, target string) *cutProxy { return newRecordingProxy(t, target, nil) }

// newRecordingProxy is newCutProxy that also gives every byte in both directions to rec
// (when not nil), e.g. what a SOCKS5 proxy behind it carries.
func newRecordingProxy(t testing.TB, target string, rec *recorder) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxiedConn{client: c, server: s}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if rec != nil {
							rec.add(buf[:n])
						}
						pc.mu.Lock()
						if len(pc.sent) < 64<<10 {
							pc.sent = append(pc.sent, buf[:n]...)
						}
						pc.mu.Unlock()
						if pc.frozen.Load() {
							continue
						}
						if _, werr := s.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				s.Close()
				c.Close()
			}()
			go func() {
				defer p.wg.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && rec != nil {
						rec.add(buf[:n])
					}
					if n > 0 && !pc.frozen.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
				s.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection through the proxy (both sides), as a network failure would.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
}

// freeze silently drops all traffic on the current connections, as a dead network path does.
func (p *cutProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.frozen.Store(true)
	}
}

func (p *cutProxy) connections() []*proxiedConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*proxiedConn(nil), p.conns...)
}
