package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/xtlsjingle/xtlsjingle/xtls"
)

const helpText = `xtlschat — end-to-end encrypted chat between two XMPP clients (XTLS over Jingle)

The servers in between carry only ciphertext. Peers prove who they are with pinned
certificates (method x509) or, the first time, with a one-time password you agree on out of
band, e.g. by phone (method srp); a successful password check pins the peer's certificate.

Usage:
  xtlschat [flags]                       interactive chat; type /help inside
  xtlschat open --to FULL-JID [flags]    open a session, send lines, print JSON events
  xtlschat listen [--from JID] [flags]   accept sessions (and files), print JSON events
  xtlschat send --to FULL-JID --file PATH [flags]   send a file over XTLS, print JSON events
  xtlschat fp --jid JID                  print your own fingerprint (creates your identity)
  xtlschat help                          this text

Account flags (every command):
  --jid JID             your account, e.g. romeo@example.org or romeo@example.org/laptop
  --password-file FILE  read the account password from FILE (first line; mode 0600)
  --server HOST:PORT    connect here instead of the domain's SRV record or port 5222
  --server-cert FILE    trust only the certificate(s) in this PEM file for the server
                        (for a local server with a self-signed certificate)
  --config-dir DIR      where your identity and pins live
                        (default: $XTLSCHAT_CONFIG_DIR or ~/.config/xtlschat)
  --s5b-listen ADDR     offer direct SOCKS5 connections from ADDR, e.g. 192.168.1.5:0
                        (default: none; the server's proxy and in-band streams are used)
  --stun HOST:PORT      learn the address under which the --s5b-listen port is reachable
                        from the Internet from this STUN server (repeatable; tried in order)
  --s5b-forward EXTIP:PORT  a port forward on your NAT to the --s5b-listen port, offered as a
                        candidate (repeatable; ":PORT" takes the external IP from --stun)
  --publish-p2p         publish your external and local S5B address and your public key in
                        your presence (urn:nf:iot:p2p:1.0), for contacts subscribed to it;
                        a contact on the same network (same external IP) then connects to
                        your local address. Addresses are hints: TLS still checks the peer.
  --subscribe JID       ask for JID's presence and let JID see yours (RFC 6121 subscription,
                        repeatable; a request from JID is approved) — how contacts learn
                        what --publish-p2p publishes; open waits up to 5 s for the presence
                        of a --to that --subscribe names
  -v                    print connection events to stderr

Session flags (open, listen, and the interactive /open):
  --transport s5b|ibb|auto   bytestream: SOCKS5 (fast), in-band (works everywhere), or
                             SOCKS5 with in-band as fallback (default auto)
  --method x509|srp|auto     x509 needs the peer pinned; srp needs a shared password;
                             auto picks x509 when pinned, else srp (default auto)
  --shared-password-file FILE  the one-time shared password for srp (or $XTLSCHAT_SHARED_PASSWORD)
  --timeout DURATION         give up setting up a session, or waiting for the messages of
                             --wait, after this long (default 2m)

open:   --to FULL-JID (the peer's JID with its resource)  --message TEXT (repeatable; default:
        the lines of standard input)  --wait N (wait for N messages from the peer before closing)
listen: --from JID (accept only this peer, bare or full; default: everyone)  --echo (send every
        message back)  --sessions N (exit after N sessions or transfers have ended; default: run
        until killed)  --download-dir DIR (accept offered files into DIR; default: decline files)
send:   --to FULL-JID  --file PATH (the file's name is offered, its SHA-256 is checked by the
        receiver and printed)  --allow-plaintext (only if the peer's client has no XTLS at all:
        send this one file UNENCRYPTED; never to a peer you have pinned)
Files (listen, interactive): --download-dir DIR  --max-size BYTES (refuse larger offers; default
        no limit). A received file never replaces an existing one; a partial download
        (.NAME.part) resumes when the same file is offered again. Transfers between xtlschat
        clients always run over XTLS (x509 or srp, as sessions do). A client without XTLS
        (e.g. Libervia) can only send or receive files unencrypted: listen declines its offers
        unless --allow-plaintext-from JID (repeatable) names it; interactively such an offer
        is marked NOT end-to-end encrypted and needs /accept --plaintext N.

Passwords never go on the command line. The account password comes from $XTLSCHAT_PASSWORD,
--password-file, or a prompt on the terminal; the shared password for srp from
$XTLSCHAT_SHARED_PASSWORD, --shared-password-file, or a prompt (interactive mode).

Your identity (identity.pem, a self-signed certificate and its private key) and the
fingerprints you pinned (pins.json) live in CONFIG-DIR/<your bare JID>/, mode 0600.

Scriptable output: one JSON object per line, e.g.
  {"event":"ready","jid":"romeo@example.org/laptop","fingerprint":"9F86 D081 …","ni":"ni:///sha-256;…"}
  {"event":"session","peer":"juliet@example.org/phone","method":"srp","transport":"s5b-direct",…}
  {"event":"pinned","peer":"juliet@example.org","fingerprint":"…","verified":"srp"}
  {"event":"message","peer":"juliet@example.org/phone","dir":"in","text":"hello"}
  {"event":"closed","peer":"juliet@example.org/phone","reason":"success"}
  {"event":"file-offer","peer":"…","name":"photo.jpg","size":123456}
  {"event":"progress","peer":"…","name":"photo.jpg","dir":"in","done":65536,"size":123456,"rate":1.2e6}
  {"event":"file","peer":"…","dir":"in","name":"photo.jpg","path":"/home/me/Downloads/photo.jpg","size":123456,"hash":"sha-256","sha256":"…","encrypted":true}
  (file-offer, session, file and declined events of a transfer carry "encrypted"; false only for
  an unencrypted transfer you allowed with a peer without XTLS)
  {"event":"error","message":"…","code":3}

Exit status:
  0  success
  1  usage: bad flags, no password source, unusable config directory
  2  cannot connect or log in to the XMPP server (or lost the connection)
  3  security failure: certificate changed, wrong shared password, possible attack
  4  the peer declined, is offline, is not verified and no password was given, or does not
     support XTLS
  5  the session failed after it was set up, or timed out
`

// environment is what run reads from the process environment (injected for tests).
type environment struct {
	getenv func(string) string
}

// options holds every flag; each command uses its part.
type options struct {
	jid, passwordFile, server, serverCert, configDir, s5bListen string
	verbose                                                     bool
	stun, s5bForward, subscribe                                 stringList
	publishP2P                                                  bool

	transport, method, sharedPasswordFile string
	timeout                               time.Duration

	to       string
	messages stringList
	wait     int

	from     string
	echo     bool
	sessions int

	file           string // send
	allowPlaintext bool   // send: unencrypted if the peer has no XTLS (this transfer only)
	downloadDir    string // listen, interactive
	maxSize        int64
	// listen: peers (bare or full JIDs) whose unencrypted file offers are accepted
	allowPlaintextFrom stringList
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// newFlagSet returns the flag set of command cmd ("" for interactive mode) bound to o.
func newFlagSet(cmd string, o *options, stderr io.Writer) *flag.FlagSet {
	name := "xtlschat"
	if cmd != "" {
		name += " " + cmd
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, "Run 'xtlschat --help' for the manual.\n") }
	fs.StringVar(&o.jid, "jid", "", "your account JID")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the account password")
	fs.StringVar(&o.server, "server", "", "server address HOST:PORT")
	fs.StringVar(&o.serverCert, "server-cert", "", "PEM file with the server's certificate")
	fs.StringVar(&o.configDir, "config-dir", "", "directory of identity and pins")
	fs.StringVar(&o.s5bListen, "s5b-listen", "", "address for direct SOCKS5 candidates")
	fs.BoolVar(&o.verbose, "v", false, "print connection events")
	fs.Var(&o.stun, "stun", "STUN server HOST:PORT (repeatable)")
	fs.Var(&o.s5bForward, "s5b-forward", "port forward EXTIP:PORT to the S5B listener (repeatable)")
	fs.BoolVar(&o.publishP2P, "publish-p2p", false, "publish addresses and key in presence")
	fs.Var(&o.subscribe, "subscribe", "subscribe to JID's presence and approve its (repeatable)")
	if cmd == "fp" {
		return fs
	}
	fs.StringVar(&o.transport, "transport", "auto", "s5b, ibb or auto")
	fs.StringVar(&o.method, "method", "auto", "x509, srp or auto")
	fs.StringVar(&o.sharedPasswordFile, "shared-password-file", "", "file holding the shared password for srp")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "session setup timeout")
	switch cmd {
	case "open":
		fs.StringVar(&o.to, "to", "", "peer's full JID")
		fs.Var(&o.messages, "message", "message to send (repeatable)")
		fs.IntVar(&o.wait, "wait", 0, "messages to wait for before closing")
	case "listen":
		fs.StringVar(&o.from, "from", "", "accept only this JID")
		fs.BoolVar(&o.echo, "echo", false, "send every message back")
		fs.IntVar(&o.sessions, "sessions", 0, "exit after this many sessions")
	case "send":
		fs.StringVar(&o.to, "to", "", "peer's full JID")
		fs.StringVar(&o.file, "file", "", "file to send")
		fs.BoolVar(&o.allowPlaintext, "allow-plaintext", false, "send unencrypted if the peer has no XTLS")
	}
	if cmd == "listen" {
		fs.Var(&o.allowPlaintextFrom, "allow-plaintext-from", "accept ONE unencrypted file offer from this JID (bare or full; repeat the flag for each file)")
	}
	if cmd == "listen" || cmd == "" {
		fs.StringVar(&o.downloadDir, "download-dir", "", "directory for received files")
		fs.Int64Var(&o.maxSize, "max-size", 0, "refuse offered files larger than this many bytes")
	}
	return fs
}

// parseArgs picks the command and parses its flags.
func parseArgs(args []string, stderr io.Writer) (cmd string, o *options, err error) {
	o = &options{}
	if len(args) > 0 {
		switch args[0] {
		case "open", "listen", "send", "fp":
			cmd, args = args[0], args[1:]
		case "help", "-h", "-help", "--help":
			return "help", o, nil
		}
	}
	fs := newFlagSet(cmd, o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "help", o, nil
		}
		return "", nil, usageErr(err)
	}
	if fs.NArg() > 0 {
		return "", nil, usagef("unexpected argument %q (messages go in --message or on standard input; run 'xtlschat --help')", fs.Arg(0))
	}
	if o.jid == "" {
		return "", nil, usagef("--jid is required: your account, e.g. --jid romeo@example.org")
	}
	bare, domain := splitJID(o.jid)
	if !strings.Contains(bare, "@") || domain == "" || strings.HasSuffix(o.jid, "/") {
		return "", nil, usagef("--jid %q is not an account JID like romeo@example.org", o.jid)
	}
	if o.s5bListen == "" && (len(o.stun) > 0 || len(o.s5bForward) > 0 || o.publishP2P) {
		return "", nil, usagef("--stun, --s5b-forward and --publish-p2p need --s5b-listen ADDR")
	}
	for _, f := range o.s5bForward {
		if _, _, err := net.SplitHostPort(f); err != nil {
			return "", nil, usagef("--s5b-forward %q is not EXTIP:PORT", f)
		}
	}
	for _, j := range o.subscribe {
		if b, err := xtls.BareJID(j); err != nil || !strings.Contains(b, "@") {
			return "", nil, usagef("--subscribe %q is not a JID like juliet@example.org", j)
		}
	}
	switch o.transport {
	case "", "auto", "s5b", "ibb":
	default:
		return "", nil, usagef("--transport must be s5b, ibb or auto, not %q", o.transport)
	}
	switch o.method {
	case "", "auto", xtls.MethodX509, xtls.MethodSRP:
	default:
		return "", nil, usagef("--method must be x509, srp or auto, not %q", o.method)
	}
	switch cmd {
	case "send":
		if o.to == "" || !strings.Contains(o.to, "/") {
			return "", nil, usagef("send needs --to with the peer's full JID, e.g. --to juliet@example.org/phone")
		}
		if o.file == "" {
			return "", nil, usagef("send needs --file PATH")
		}
	case "open":
		if o.to == "" || !strings.Contains(o.to, "/") {
			return "", nil, usagef("open needs --to with the peer's full JID, e.g. --to juliet@example.org/phone (the resource is shown in its client or by 'xtlschat listen')")
		}
		if o.wait < 0 {
			return "", nil, usagef("--wait must not be negative")
		}
	case "listen":
		if o.sessions < 0 {
			return "", nil, usagef("--sessions must not be negative")
		}
	}
	if o.maxSize < 0 {
		return "", nil, usagef("--max-size must not be negative")
	}
	if o.downloadDir != "" {
		if fi, err := os.Stat(o.downloadDir); err != nil || !fi.IsDir() {
			return "", nil, usagef("--download-dir %q is not a directory", o.downloadDir)
		}
	}
	if o.timeout <= 0 && cmd != "fp" {
		return "", nil, usagef("--timeout must be positive")
	}
	return cmd, o, nil
}

// run is xtlschat without the process around it: args without the program name.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env environment) error {
	cmd, o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	if cmd == "help" {
		_, err := io.WriteString(stdout, helpText)
		return err
	}
	root := o.configDir
	if root == "" {
		if root, err = defaultConfigDir(env.getenv); err != nil {
			return usageErr(err)
		}
	}
	bare, err := xtls.BareJID(o.jid)
	if err != nil {
		return usagef("--jid %q: %v", o.jid, err)
	}
	if err := ensurePrivateDir(root); err != nil {
		return usageErr(err)
	}
	st, err := openStore(root, bare)
	if err != nil {
		return usageErr(err)
	}
	if cmd == "fp" {
		fp := st.identity.Fingerprint()
		fmt.Fprintf(stdout, "%s\n%s\n%s\n", bare, fp.Groups(), fp.NI())
		return nil
	}
	tty := isTerminal(stdin) && cmd == ""
	password, err := accountPassword(o, env, stdin, stderr, tty)
	if err != nil {
		return err
	}
	switch cmd {
	case "open":
		return runOpen(ctx, o, st, password, stdin, stdout, stderr, env)
	case "listen":
		return runListen(ctx, o, st, password, stdout, stderr, env)
	case "send":
		return runSend(ctx, o, st, password, stdout, stderr, env)
	}
	return runInteractive(ctx, o, st, password, stdin, stdout, stderr, env)
}

// accountPassword returns the account password from $XTLSCHAT_PASSWORD, --password-file or,
// when stdin is a terminal, a prompt.
func accountPassword(o *options, env environment, stdin io.Reader, stderr io.Writer, tty bool) (string, error) {
	if o.passwordFile != "" {
		p, err := readSecretFile(o.passwordFile)
		if err != nil {
			return "", usagef("--password-file: %v", err)
		}
		return p, nil
	}
	if p := env.getenv(envPassword); p != "" {
		return p, nil
	}
	if tty {
		return promptSecret(stdin, stderr, "Password for "+o.jid+": ")
	}
	return "", usagef("no account password: set %s, pass --password-file FILE, or run interactively on a terminal", envPassword)
}

// sharedPassword returns the srp password from --shared-password-file or
// $XTLSCHAT_SHARED_PASSWORD ("" when neither is given).
func sharedPassword(o *options, env environment) (string, error) {
	if o.sharedPasswordFile != "" {
		p, err := readSecretFile(o.sharedPasswordFile)
		if err != nil {
			return "", usagef("--shared-password-file: %v", err)
		}
		return p, nil
	}
	return env.getenv(envSharedPassword), nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// promptSecret reads a line from the terminal stdin without echo.
func promptSecret(stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	f := stdin.(*os.File)
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", usagef("reading the password: %v", err)
	}
	if len(b) == 0 {
		return "", usagef("empty password")
	}
	return string(b), nil
}

// p2pFlags returns the flags of connect's peer-to-peer part.
func (o *options) p2pFlags() p2pFlags {
	return p2pFlags{stun: o.stun, forward: o.s5bForward, publish: o.publishP2P, subscribe: o.subscribe}
}

// transportPolicy maps --transport to the xtls policy.
func transportPolicy(s string) xtls.TransportPolicy {
	switch s {
	case "s5b":
		return xtls.TransportS5B
	case "ibb":
		return xtls.TransportIBB
	}
	return xtls.TransportAuto
}
