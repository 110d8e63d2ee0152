package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// ftSecure wraps both bytestreams in TLS with xtls's x509 profile and pinned fingerprints
// (the initiator is the TLS client, XTLS-3).
func ftSecure(t *testing.T, a, b *gosrcxmpp.Client, ini, res net.Conn) (net.Conn, net.Conn) {
	t.Helper()
	bareA, _ := xtls.BareJID(a.LocalJID())
	bareB, _ := xtls.BareJID(b.LocalJID())
	idA, err := xtls.NewIdentity(bareA, xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := xtls.NewIdentity(bareB, xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := xtls.NewMemoryStore(), xtls.NewMemoryStore()
	pa.Pin(bareB, idB.Fingerprint(), xtls.VerifiedSRP, time.Now())
	pb.Pin(bareA, idA.Fingerprint(), xtls.VerifiedSRP, time.Now())
	cc, err := xtls.ClientConfig(idA, bareB, xtls.MethodX509, pa)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := xtls.ServerConfig(idB, bareA, xtls.MethodX509, pb)
	if err != nil {
		t.Fatal(err)
	}
	c, s := tls.Client(ini, cc), tls.Server(res, sc)
	errc := make(chan error, 1)
	go func() { errc <- s.HandshakeContext(t.Context()) }()
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c, s
}

// ftRun transfers size random bytes from a to b through Prosody with XEP-0234 over transport
// ("ibb" or "proxy": S5B through Prosody's mod_proxy65 only), the bytestream secured with TLS,
// and checks the received file byte for byte.
func ftRun(t *testing.T, transport string, size int) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "ft-a", nil)
	b := dialAccount(t, srv, "ft-b", nil)
	ha, hb := ibb.NewHandler(a, nil), ibb.NewHandler(b, nil)
	defer ha.Close()
	defer hb.Close()
	incoming := make(chan *jingle.Session, 1)
	ma := jingle.NewManager(a, jingle.Config{InfoNamespaces: []string{filetransfer.NS}})
	mb := jingle.NewManager(b, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer ma.Close()
	defer mb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()

	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filetransfer.File{Name: "payload.bin", Size: int64(size), MediaType: "application/octet-stream",
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
	desc, err := file.Description()
	if err != nil {
		t.Fatal(err)
	}
	var ini jingle.Transport
	var proxy []socks5.Streamhost
	if transport == "proxy" {
		proxy = []socks5.Streamhost{discoverProxy(t, srv, a)}
		tr, err := socks5.NewJingleTransport(socks5.Config{Link: a, PeerJID: b.LocalJID(), Proxies: proxy})
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	} else {
		tr, err := ibb.NewJingleTransport(ha, b.LocalJID(), "ft-ibb", 0)
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	}
	s, err := ma.Initiate(ctx, b.LocalJID(), []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: ini.Element()}}, map[string]jingle.Transport{"f": ini})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	connB := make(chan net.Conn, 1)
	connA := make(chan net.Conn, 1)
	type result struct {
		r   *filetransfer.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		sb := <-incoming
		c := sb.Contents()[0]
		offer, err := filetransfer.ParseDescription(c.Description)
		if err == nil {
			_, err = filetransfer.CheckOffer(offer, filetransfer.ReceiveOptions{Dir: dir})
		}
		var res jingle.Transport
		if err == nil {
			if transport == "proxy" {
				res, err = socks5.AcceptJingleTransport(socks5.Config{Link: b, PeerJID: a.LocalJID()}, c.Transport)
			} else {
				res, err = ibb.NewJingleResponder(hb, a.LocalJID(), c.Transport)
			}
		}
		if err == nil {
			err = sb.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
				Description: c.Description, Transport: res.Element()}}, map[string]jingle.Transport{"f": res})
		}
		var conn net.Conn
		if err == nil {
			conn, err = sb.Establish(ctx, "f")
		}
		if err != nil {
			close(connB)
			sb.Terminate(ctx, &jingle.Reason{Condition: jingle.FailedApplication})
			done <- result{nil, err}
			return
		}
		connB <- conn
		select {
		case conn = <-connA:
		case <-ctx.Done(): // the test failed before securing the bytestream
			sb.Terminate(context.Background(), &jingle.Reason{Condition: jingle.Cancel})
			done <- result{nil, ctx.Err()}
			return
		}
		r, err := filetransfer.Receive(ctx, sb, "f", conn, offer, filetransfer.ReceiveOptions{Dir: dir})
		done <- result{r, err}
	}()
	if ev := <-s.Events(); ev.Action != jingle.SessionAccept {
		t.Fatalf("not accepted: %v %+v; receiver: %v", ev.Action, ev.Reason, (<-done).err)
	}
	conn, err := s.Establish(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	cb, ok := <-connB
	if !ok {
		t.Fatalf("receiver: %v", (<-done).err)
	}
	wa, wb := ftSecure(t, a, b, conn, cb)
	connA <- wb
	start := time.Now()
	if err := filetransfer.Send(ctx, s, "f", wa, bytes.NewReader(data), &file, filetransfer.SendOptions{}); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	el := time.Since(start)
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) || r.r.Verified != "sha-256" {
		t.Fatalf("file differs (%v), %+v", err, r.r)
	}
	t.Logf("%s: %d bytes over TLS through Prosody in %v (%.1f MB/s)", transport, size, el, float64(size)/el.Seconds()/1e6)
}

// TestFileTransferProsodyIBB: XEP-0234 over XEP-0261 IBB through Prosody, bytestream in TLS,
// 1 MiB sha-256 checked (issue 8).
func TestFileTransferProsodyIBB(t *testing.T) { ftRun(t, "ibb", 1<<20) }

// TestFileTransferProsodyProxy: XEP-0234 over XEP-0260 S5B through Prosody's proxy65,
// bytestream in TLS, 8 MiB sha-256 checked (issue 8).
func TestFileTransferProsodyProxy(t *testing.T) { ftRun(t, "proxy", 8<<20) }

// libervia runs a headless Libervia 0.9 backend (pb bridge on a unix socket, private
// HOME/XDG dirs) with one profile on srv; cli runs libervia-cli against it.
type libervia struct {
	jid string
	env []string
	dir string
}

func startLibervia(t *testing.T, srv *prosodytest.Server) *libervia {
	t.Helper()
	if _, err := os.Stat("/usr/bin/libervia-backend"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("libervia-backend not installed (apt-get install libervia-backend libervia-cli)")
		}
		t.Skip("libervia-backend not installed")
	}
	dir := t.TempDir()
	for _, d := range []string{"home", "cfg/libervia", "data", "cache", "dl"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	conf := "[DEFAULT]\nbridge = pb\nlocal_dir = " + filepath.Join(dir, "data") + "\ndownloads_dir = " +
		filepath.Join(dir, "dl") + "\nlog_level = debug\n"
	if err := os.WriteFile(filepath.Join(dir, "cfg/libervia/libervia.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Libervia's NAT-PORT plugin runs UPnP discovery (SSDP multicast) at start: a module stub
	// that fails to import disables it, so no traffic leaves 127.0.0.1.
	os.MkdirAll(filepath.Join(dir, "pystub"), 0o700)
	os.WriteFile(filepath.Join(dir, "pystub", "miniupnpc.py"), []byte("raise ImportError('disabled in tests')\n"), 0o600)
	l := &libervia{dir: dir, env: append(os.Environ(), "PYTHONPATH="+filepath.Join(dir, "pystub"), "HOME="+filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "cfg"), "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"))}
	logf, _ := os.Create(filepath.Join(dir, "backend.log"))
	cmd := exec.Command("/usr/bin/python3", "/usr/bin/libervia-backend", "fg")
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = l.env, dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "backend.log"))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("libervia backend log tail:\n%s", b)
		}
	})
	sock := filepath.Join(dir, "data", "bridge_pb")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("libervia backend did not start")
		}
	}
	jid, pw := srv.Account(t)
	l.jid = jid + "/libervia" // a fixed resource, so that we can address it
	_, port, _ := net.SplitHostPort(srv.Addr)
	l.cli(t, "profile", "create", "-j", l.jid, "-x", pw, "-p", "pw", "test")
	for _, p := range [][3]string{
		{"Connection", "Force server", "127.0.0.1"},
		{"Connection", "Force port", port},
		{"Connection", "check_certificate", "false"},
		{"Connection", "Password", pw},
		{"General", "allow_get_ip", "false"},
	} {
		l.cli(t, "param", "set", "-p", "test", "--pwd", "pw", p[0], p[1], p[2])
	}
	return l
}

func (l *libervia) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{"/usr/bin/libervia-cli"}, args...)...)
	cmd.Env, cmd.Dir = l.env, l.dir
	return cmd
}

func (l *libervia) cli(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := l.command(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("libervia-cli %v: %v\n%s", args, err, out)
	}
}

// TestFileTransferLiberviaToUsS5B: Libervia 0.9 sends 1 MiB of random bytes to us with
// XEP-0234 over S5B (it always starts with S5B); we receive it (plaintext explicitly allowed
// for this transfer: Libervia does not speak XTLS), verify its sha-256 from Libervia's
// checksum session-info (base64-of-hex quirk) and compare the bytes (issue 8).
func TestFileTransferLiberviaToUsS5B(t *testing.T) {
	srv := prosodytest.Shared(t)
	us := dialAccount(t, srv, "ft-us", nil)
	defer serveFTDisco(us)()
	incoming := make(chan *jingle.Session, 1)
	m := jingle.NewManager(us, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer m.Close()
	ln, err := socks5.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lib := startLibervia(t, srv)
	liberviaToUs(t, us, lib, incoming, ln, nil)
}

// TestFileTransferLiberviaToUsIBB: Libervia starts with S5B; we make S5B fail on purpose (no
// candidates of ours, a connect timeout that cannot be met), Libervia falls back with
// transport-replace to IBB, we accept it and receive 1 MiB, sha-256 verified (issue 8).
func TestFileTransferLiberviaToUsIBB(t *testing.T) {
	srv := prosodytest.Shared(t)
	us := dialAccount(t, srv, "ft-us3", nil)
	defer serveFTDisco(us)()
	incoming := make(chan *jingle.Session, 1)
	m := jingle.NewManager(us, jingle.Config{InfoNamespaces: []string{filetransfer.NS}, HandleTransportReplace: true,
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer m.Close()
	h := ibb.NewHandler(us, nil)
	defer h.Close()
	lib := startLibervia(t, srv)
	liberviaToUs(t, us, lib, incoming, nil, h)
}

// serveFTDisco answers disco#info with our features plus those Libervia looks for before it
// offers a Jingle file transfer.
func serveFTDisco(us *gosrcxmpp.Client) func() {
	info := disco.ClientInfo()
	for _, f := range []string{filetransfer.NS, jingle.NS, "urn:xmpp:jingle:transports:s5b:1",
		"urn:xmpp:jingle:transports:ibb:1", "urn:xmpp:hashes:2", "urn:xmpp:hash-function-text-names:sha-256"} {
		if !info.Supports(f) {
			info.Features = append(info.Features, f)
		}
	}
	return disco.Serve(us, info)
}

// liberviaToUs has Libervia send 1 MiB to us; with fallback set, our S5B fails on purpose and
// Libervia's transport-replace to IBB is accepted on fallback.
func liberviaToUs(t *testing.T, us *gosrcxmpp.Client, lib *libervia, incoming chan *jingle.Session, ln *socks5.Listener, fallback *ibb.Handler) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "payload.bin")
	os.WriteFile(src, data, 0o600)
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	sendOut := make(chan []byte, 1)
	go func() {
		out, err := lib.command(ctx, "file", "send", "-p", "test", "--pwd", "pw", "-c", src, us.LocalJID()).CombinedOutput()
		if err != nil {
			out = append(out, []byte(err.Error())...)
		}
		sendOut <- out
	}()
	var s *jingle.Session
	select {
	case s = <-incoming:
	case out := <-sendOut:
		t.Fatalf("libervia-cli file send ended without a session: %s", out)
	case <-ctx.Done():
		t.Fatal("no session from Libervia")
	}
	c := s.Contents()[0]
	offer, err := filetransfer.ParseDescription(c.Description)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true, MaxSize: 2 << 20}
	if _, err := filetransfer.CheckOffer(offer, opts); err != nil {
		t.Fatal(err)
	}
	s5 := socks5.Config{Link: us, PeerJID: s.Peer(), Listener: ln}
	if fallback != nil {
		s5.ConnectTimeout = time.Nanosecond // make S5B fail on purpose
	}
	tr, err := socks5.AcceptJingleTransport(s5, c.Transport)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
		Description: c.Description, Transport: tr.Element()}}, map[string]jingle.Transport{c.Name: tr}); err != nil {
		t.Fatal(err)
	}
	conn, err := s.Establish(ctx, c.Name)
	if fallback != nil {
		if err == nil {
			t.Fatal("S5B connected although it was made to fail")
		}
		var ev jingle.Event
		select {
		case ev = <-s.Events():
		case <-ctx.Done():
			t.Fatal("no transport-replace from Libervia")
		}
		if ev.Action != jingle.TransportReplace || len(ev.Contents) != 1 || jingle.Namespace(ev.Contents[0].Transport) != ibb.NSJingle {
			t.Fatalf("expected transport-replace to IBB, got %v %+v", ev.Action, ev.Contents)
		}
		it, ierr := ibb.NewJingleResponder(fallback, s.Peer(), ev.Contents[0].Transport)
		if ierr != nil {
			t.Fatal(ierr)
		}
		if err := s.Bind(c.Name, it); err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, jingle.TransportAccept, []jingle.Content{{Creator: c.Creator, Name: c.Name,
			Senders: c.Senders, Transport: it.Element()}}, nil); err != nil {
			t.Fatal(err)
		}
		conn, err = s.Establish(ctx, c.Name)
	}
	if err != nil {
		t.Fatal(err)
	}
	res, err := filetransfer.Receive(ctx, s, c.Name, conn, offer, opts)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	got, _ := os.ReadFile(res.Path)
	if !bytes.Equal(got, data) || res.Verified != "sha-256" {
		t.Fatalf("file differs or unverified: %+v", res)
	}
	t.Logf("libervia-cli: %s", <-sendOut)
}

// TestFileTransferUsToLiberviaS5B: we send 1 MiB of random bytes to Libervia 0.9 with
// XEP-0234 over S5B (our direct candidate on 127.0.0.1), plaintext explicitly allowed
// (Libervia has no XTLS); Libervia's copy is compared byte for byte and it ends the session
// with <success/> after our checksum (issue 8).
func TestFileTransferUsToLiberviaS5B(t *testing.T) { usToLibervia(t, "s5b") }

// TestFileTransferUsToLiberviaIBB: the same over XEP-0261 IBB offered in session-initiate.
func TestFileTransferUsToLiberviaIBB(t *testing.T) { usToLibervia(t, "ibb") }

func usToLibervia(t *testing.T, transport string) {
	srv := prosodytest.Shared(t)
	us := dialAccount(t, srv, "ft-us2", nil)
	defer serveFTDisco(us)()
	m := jingle.NewManager(us, jingle.Config{InfoNamespaces: []string{filetransfer.NS}})
	defer m.Close()
	ln, err := socks5.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lib := startLibervia(t, srv)
	dl := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	recvOut := make(chan []byte, 1)
	go func() {
		out, err := lib.command(ctx, "file", "receive", "-p", "test", "--pwd", "pw", "-c", "--path", dl).CombinedOutput()
		if err != nil {
			out = append(out, []byte(err.Error())...)
		}
		recvOut <- out
	}()
	time.Sleep(5 * time.Second) // harness: libervia-cli connects and listens for offers

	data := make([]byte, 1<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filetransfer.File{Name: "payload.bin", Size: int64(len(data)), MediaType: "application/octet-stream",
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}, HexDigests: true} // Libervia's encoding
	desc, _ := file.Description()
	var tr jingle.Transport
	if transport == "ibb" {
		h := ibb.NewHandler(us, nil)
		defer h.Close()
		tr, err = ibb.NewJingleTransport(h, lib.jid, "ft-libervia", 0)
	} else {
		tr, err = socks5.NewJingleTransport(socks5.Config{Link: us, PeerJID: lib.jid, Listener: ln})
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Initiate(ctx, lib.jid, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: tr.Element()}}, map[string]jingle.Transport{"f": tr})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-s.Events():
		if ev.Action != jingle.SessionAccept {
			t.Fatalf("Libervia answered %v %+v", ev.Action, ev.Reason)
		}
	case <-ctx.Done():
		t.Fatal("no answer from Libervia")
	}
	conn, err := s.Establish(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if err := filetransfer.Send(ctx, s, "f", conn, bytes.NewReader(data), &file, filetransfer.SendOptions{AllowPlaintext: true}); err != nil {
		t.Fatalf("send: %v", err)
	}
	waitLiberviaCopy(t, filepath.Join(dl, "payload.bin"), data)
	cancel()
	<-recvOut
}
