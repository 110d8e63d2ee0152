package integration

// The real servers the integration tests run against (issue 11): Prosody (prosodytest) and
// ejabberd 23.01 (ejabberdtest), behind one small value so that a core case is written once
// and run against both with forEachServer.

import (
	"crypto/x509"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/internal/ejabberdtest"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// server is what a test needs from a running XMPP server on loopback.
type server struct {
	Name        string // "Prosody" or "ejabberd", for logs
	Addr        string // c2s, STARTTLS required
	Domain      string
	RootCAs     *x509.CertPool
	Certificate *x509.Certificate
	ProxyJID    string // XEP-0065 proxy
	ProxyAddr   string
	account     func(testing.TB) (jid, password string)
	logTail     func() string
}

// Account registers a fresh account and returns its bare JID and password.
func (s *server) Account(t testing.TB) (jid, password string) { return s.account(t) }

// LogTail returns the end of the server's log.
func (s *server) LogTail() string { return s.logTail() }

func prosodyServer(p *prosodytest.Server) *server {
	return &server{Name: "Prosody", Addr: p.Addr, Domain: p.Domain, RootCAs: p.RootCAs, Certificate: p.Certificate,
		ProxyJID: p.ProxyJID, ProxyAddr: p.ProxyAddr, account: p.Account, logTail: p.LogTail}
}

func ejabberdServer(e *ejabberdtest.Server) *server {
	return &server{Name: "ejabberd", Addr: e.Addr, Domain: e.Domain, RootCAs: e.RootCAs, Certificate: e.Certificate,
		ProxyJID: e.ProxyJID, ProxyAddr: e.ProxyAddr, account: e.Account, logTail: e.LogTail}
}

// sharedServers are the package's shared instances of every server, started on first use.
var sharedServers = []struct {
	name   string
	shared func(testing.TB) *server
}{
	{"prosody", func(t testing.TB) *server { return prosodyServer(prosodytest.Shared(t)) }},
	{"ejabberd", func(t testing.TB) *server { return ejabberdServer(ejabberdtest.Shared(t)) }},
}

// forEachServer runs f as a subtest against each shared server.
func forEachServer(t *testing.T, f func(t *testing.T, srv *server)) {
	for _, s := range sharedServers {
		t.Run(s.name, func(t *testing.T) { f(t, s.shared(t)) })
	}
}
