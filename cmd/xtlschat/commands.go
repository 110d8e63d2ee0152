package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// command is one entry of the command table (agl/xmpp-client uiCommands).
type command struct {
	name, args, help string
	run              func(u *ui, args []string)
}

var commands []command

func init() {
	// Assigned here, not in the declaration, because /help refers to the table itself.
	commands = []command{
		{"open", "FULL-JID [--transport s5b|ibb|auto] [--method x509|srp|auto]", "open a secure session (asks for the shared password when the peer is not pinned)", (*ui).cmdOpen},
		{"send", "FULL-JID [--transport s5b|ibb|auto] [--method x509|srp|auto] [--allow-plaintext] PATH", "send a file over XTLS (asks for the shared password when the peer is not pinned); --allow-plaintext sends this one file UNENCRYPTED if the peer's client has no XTLS", (*ui).cmdSend},
		{"accept", "[--plaintext] [N] [DIR]", "accept incoming session or file N (default: the oldest; files go to DIR or the download directory); asks for the shared password if needed; an offer that is NOT end-to-end encrypted needs --plaintext", (*ui).cmdAccept},
		{"decline", "[N]", "decline incoming session or file N (default: the oldest)", (*ui).cmdDecline},
		{"cancel", "[N]", "cancel file transfer N (default: the latest)", (*ui).cmdCancel},
		{"sessions", "", "list open sessions and pending offers", (*ui).cmdSessions},
		{"switch", "N", "send typed lines to session N", (*ui).cmdSwitch},
		{"fp", "[JID]", "show your fingerprint (hex, ni URI, QR code), or a peer's pinned fingerprints", (*ui).cmdFP},
		{"pins", "[JID]", "list pinned fingerprints (of one peer, or of everyone)", (*ui).cmdPins},
		{"verify", "JID FINGERPRINT", "pin a fingerprint you compared out of band (hex groups or ni URI)", (*ui).cmdVerify},
		{"unpin", "JID FINGERPRINT", "remove a pin; that certificate is refused from then on", (*ui).cmdUnpin},
		{"close", "[N]", "close the current session (or session N)", (*ui).cmdClose},
		{"quit", "", "close every session and exit", (*ui).cmdQuit},
		{"help", "", "this list", (*ui).cmdHelp},
	}
}

// command runs a typed line: a /command, or a chat line for the current session.
func (u *ui) command(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		text := strings.TrimPrefix(line, "/") // "//x" sends "/x"
		if u.current == nil {
			u.say("no session: /open FULL-JID first, or /accept an incoming one (/help lists commands)")
			return
		}
		select {
		case u.current.out <- text:
		default:
			u.say("!! too many lines waiting to be sent to %s; this one was dropped", escapeTerminal(u.current.s.Peer))
		}
		return
	}
	fields := strings.Fields(line[1:])
	if len(fields) == 0 {
		return
	}
	for _, c := range commands {
		if c.name == fields[0] {
			c.run(u, fields[1:])
			return
		}
	}
	u.say("unknown command /%s; /help lists the commands (start a chat line with // to send a slash)", escapeTerminal(fields[0]))
}

func (u *ui) cmdHelp([]string) {
	for _, c := range commands {
		u.say("  /%-8s %s", c.name, c.args)
		u.say("             %s", c.help)
	}
	u.say("Other lines are sent to the current session. Peer text is shown with control characters escaped (\\x1b, \\u202e, …).")
}

// sessionArgs parses "FULL-JID [--transport s5b|ibb|auto] [--method x509|srp|auto]" of /open
// and /send, followed by more arguments when more is set (a path for /send). It says what is
// wrong and reports false on bad input.
func (u *ui) sessionArgs(cmd string, args []string, more bool) (o options, peer, bare string, rest []string, ok bool) {
	usage := "usage: /" + cmd + " FULL-JID [--transport s5b|ibb|auto] [--method x509|srp|auto]"
	if more {
		usage += " [--allow-plaintext] PATH"
	}
	fs := flag.NewFlagSet("/"+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.transport, "transport", u.o.transport, "")
	fs.StringVar(&o.method, "method", u.o.method, "")
	if cmd == "send" {
		fs.BoolVar(&o.allowPlaintext, "allow-plaintext", false, "")
	}
	// The JID comes first; flags follow it.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		u.say("%s", usage)
		return o, "", "", nil, false
	}
	peer = args[0]
	if err := fs.Parse(args[1:]); err != nil || (fs.NArg() > 0) != more {
		u.say("%s", usage)
		return o, "", "", nil, false
	}
	if !strings.Contains(peer, "/") {
		u.say("/%s needs the peer's full JID with its resource, e.g. %s/phone (the resource is shown in its client)", cmd, escapeTerminal(peer))
		return o, "", "", nil, false
	}
	switch o.transport {
	case "auto", "s5b", "ibb":
	default:
		u.say("--transport must be s5b, ibb or auto")
		return o, "", "", nil, false
	}
	switch o.method {
	case "auto", xtls.MethodX509, xtls.MethodSRP:
	default:
		u.say("--method must be x509, srp or auto")
		return o, "", "", nil, false
	}
	bare, err := xtls.BareJID(peer)
	if err != nil {
		u.say("%s is not a JID: %v", escapeTerminal(peer), err)
		return o, "", "", nil, false
	}
	return o, peer, bare, fs.Args(), true
}

func (u *ui) cmdOpen(args []string) {
	o, peer, bare, _, ok := u.sessionArgs("open", args, false)
	if !ok {
		return
	}
	u.withPassword(bare, o.method, func(password string) {
		oo := openOptions{peer: peer, transport: o.transport, method: o.method, password: password, timeout: u.o.timeout}
		u.say("-- opening a session with %s (transport %s, method %s) …", escapeTerminal(peer), o.transport, o.method)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			s, err := openSession(u.ctx, u.c.eng, u.st, oo)
			u.post(msgOpened{peer: peer, s: s, err: err})
		}()
	})
}

// withPassword runs start with the shared password that method needs for bare: none for x509
// (refused when bare is not pinned), the configured one, or one asked for.
func (u *ui) withPassword(bare, method string, start func(password string)) {
	pins, _ := u.st.trust.Pins(bare)
	needPassword := method == xtls.MethodSRP || (method == "auto" && len(pins) == 0)
	switch {
	case method == xtls.MethodX509 && len(pins) == 0:
		u.say("%s is not pinned, so x509 cannot work: use --method srp with a shared password, or /verify its fingerprint", escapeTerminal(bare))
	case !needPassword:
		start("")
	case u.shared != "":
		start(u.shared)
	default:
		u.say("%s is not verified yet. Agree on a one-time password with its owner out of band (phone, in person);", escapeTerminal(bare))
		u.say("it is checked inside the encrypted tunnel and pins the certificate on success.")
		u.askPassword("Shared password for "+bare+" (empty line cancels): ", func(pw string) {
			if pw == "" {
				u.say("-- cancelled")
				return
			}
			start(pw)
		})
	}
}

func (u *ui) askPassword(prompt string, then func(string)) {
	u.afterPassword = then
	u.passwordPrompt = prompt
}

// takeOffer removes and returns offer N (or the oldest).
func (u *ui) takeOffer(args []string) *pendingOffer {
	if len(u.offers) == 0 {
		u.say("no incoming session is waiting")
		return nil
	}
	i := 0
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		i = -1
		for j, p := range u.offers {
			if err == nil && p.n == n {
				i = j
			}
		}
		if i < 0 {
			u.say("no incoming session %s; /sessions lists them", escapeTerminal(args[0]))
			return nil
		}
	}
	p := u.offers[i]
	u.offers = append(u.offers[:i], u.offers[i+1:]...)
	return p
}

func (u *ui) cmdAccept(args []string) {
	plaintext := len(args) > 0 && args[0] == "--plaintext"
	if plaintext {
		args = args[1:]
	}
	p := u.takeOffer(args)
	if p == nil {
		return
	}
	unencrypted := p.file != nil && p.file.plaintext
	if unencrypted && !plaintext {
		u.offers = append([]*pendingOffer{p}, u.offers...) // still waiting
		u.say("!! offer %d is NOT end-to-end encrypted: %s's client has no XTLS, so the servers in between can read the file.", p.n, escapeTerminal(p.in.Peer))
		u.say("   /accept --plaintext %d [DIR] accepts this one file unencrypted anyway; /decline %d refuses it", p.n, p.n)
		return
	}
	if p.file != nil && !u.chooseDir(p, args) {
		u.offers = append([]*pendingOffer{p}, u.offers...) // still waiting
		return
	}
	peer := escapeTerminal(p.in.Peer)
	switch {
	case unencrypted:
		p.plaintext = true
		p.answer(xtls.Decision{})
		u.say("-- accepted the UNENCRYPTED file from %s (your choice for this one transfer)", peer)
	case p.in.Trusted:
		p.answer(xtls.Decision{Password: u.shared})
		u.say("-- accepted %s (its certificate is pinned; x509)", peer)
	case u.shared != "":
		p.answer(xtls.Decision{Password: u.shared})
		u.say("-- accepted %s; checking the shared password …", peer)
	default:
		bare, _ := xtls.BareJID(p.in.Peer)
		u.askPassword("Shared password for "+bare+" (empty line declines): ", func(pw string) {
			if pw == "" {
				p.answer(xtls.Decision{Decline: true})
				u.say("-- declined %s", peer)
				return
			}
			p.answer(xtls.Decision{Password: pw})
			u.say("-- accepted %s; checking the shared password …", peer)
		})
	}
}

func (u *ui) cmdDecline(args []string) {
	if p := u.takeOffer(args); p != nil {
		p.answer(xtls.Decision{Decline: true})
		u.say("-- declined %s", escapeTerminal(p.in.Peer))
	}
}

func (u *ui) cmdSessions([]string) {
	if len(u.sessions) == 0 && len(u.offers) == 0 && len(u.transfers) == 0 {
		u.say("no sessions")
	}
	for _, cs := range u.sessions {
		mark := " "
		if cs == u.current {
			mark = "*"
		}
		u.say("%s %d  %s  %s over %s (%s)", mark, cs.n, escapeTerminal(cs.s.Peer), cs.s.Method, cs.s.Transport, cs.s.Path)
	}
	for _, p := range u.offers {
		what := ""
		if p.file != nil {
			what = "  file " + escapeTerminal(p.file.file.Name)
			if p.file.plaintext {
				what += " (NOT end-to-end encrypted: /accept --plaintext)"
			}
		}
		u.say("? %d  %s%s  waiting for /accept or /decline", p.n, escapeTerminal(p.in.Peer), what)
	}
	u.listTransfers()
}

func (u *ui) cmdSwitch(args []string) {
	if len(args) != 1 {
		u.say("usage: /switch N (see /sessions)")
		return
	}
	n, _ := strconv.Atoi(args[0])
	for _, cs := range u.sessions {
		if cs.n == n {
			u.current = cs
			u.say("-- lines now go to session %d with %s", n, escapeTerminal(cs.s.Peer))
			return
		}
	}
	u.say("no session %s; /sessions lists them", escapeTerminal(args[0]))
}

func (u *ui) cmdFP(args []string) {
	if len(args) > 0 {
		u.cmdPins(args)
		return
	}
	fp := u.st.identity.Fingerprint()
	u.say("Your fingerprint (%s):", u.st.identity.JID())
	u.say("  %s", fp.Groups())
	u.say("  %s", fp.NI())
	if q, err := renderQR(fp.NI(), u.t != nil); err == nil {
		for _, l := range strings.Split(strings.TrimSuffix(q, "\n"), "\n") {
			u.say("%s", l)
		}
	}
	if u.current != nil {
		pf := u.current.s.PeerFingerprint
		u.say("Peer %s in session %d:", escapeTerminal(u.current.s.Peer), u.current.n)
		u.say("  %s", pf.Groups())
		u.say("  %s", pf.NI())
		u.say("  %s", keyHintText(u.current.s.KeyHint))
	}
	u.say("Compare these with your peer over a channel you trust (in person, a phone call).")
}

// knownPeers lists the bare JIDs that have pins, from the trust store's file.
func (u *ui) knownPeers() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(u.st.dir, pinsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f struct {
		Peers map[string]json.RawMessage `json:"peers"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	peers := make([]string, 0, len(f.Peers))
	for p := range f.Peers {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	return peers, nil
}

func (u *ui) cmdPins(args []string) {
	var peers []string
	if len(args) > 0 {
		bare, err := xtls.BareJID(args[0])
		if err != nil {
			u.say("%s is not a JID: %v", escapeTerminal(args[0]), err)
			return
		}
		peers = []string{bare}
	} else {
		var err error
		if peers, err = u.knownPeers(); err != nil {
			u.say("cannot list pins: %v", err)
			return
		}
	}
	n := 0
	for _, p := range peers {
		pins, err := u.st.trust.Pins(p)
		if err != nil {
			u.say("cannot read pins of %s: %v", escapeTerminal(p), err)
			continue
		}
		for _, pin := range pins {
			n++
			u.say("%s  %s  (%s, first seen %s, last seen %s)", escapeTerminal(p), pin.Fingerprint.Groups(), pin.Verified,
				pin.FirstSeen.Local().Format(time.DateTime), pin.LastSeen.Local().Format(time.DateTime))
		}
	}
	if n == 0 {
		u.say("no pins; a session with a shared password (srp) or /verify adds one")
	}
}

// pinArgs parses "JID FINGERPRINT…" (the fingerprint may be typed in groups with spaces).
func (u *ui) pinArgs(cmd string, args []string) (string, xtls.Fingerprint, bool) {
	if len(args) < 2 {
		u.say("usage: /%s JID FINGERPRINT (hex, in groups or not, or ni:///sha-256;…)", cmd)
		return "", xtls.Fingerprint{}, false
	}
	bare, err := xtls.BareJID(args[0])
	if err != nil {
		u.say("%s is not a JID: %v", escapeTerminal(args[0]), err)
		return "", xtls.Fingerprint{}, false
	}
	fp, err := xtls.ParseFingerprintText(strings.Join(args[1:], " "))
	if err != nil {
		u.say("not a SHA-256 fingerprint: %v", err)
		return "", xtls.Fingerprint{}, false
	}
	return bare, fp, true
}

func (u *ui) cmdVerify(args []string) {
	bare, fp, ok := u.pinArgs("verify", args)
	if !ok {
		return
	}
	if err := u.st.trust.Pin(bare, fp, xtls.VerifiedManual, time.Now()); err != nil {
		u.say("!! cannot pin: %v", err)
		return
	}
	u.say("** pinned %s for %s as verified by you; sessions with it now use x509", fp.Groups(), escapeTerminal(bare))
}

func (u *ui) cmdUnpin(args []string) {
	bare, fp, ok := u.pinArgs("unpin", args)
	if !ok {
		return
	}
	if err := u.st.trust.Unpin(bare, fp); err != nil {
		u.say("!! cannot unpin: %v", err)
		return
	}
	u.say("** removed %s from %s's pins", fp.Groups(), escapeTerminal(bare))
}

func (u *ui) cmdClose(args []string) {
	cs := u.current
	if len(args) > 0 {
		n, _ := strconv.Atoi(args[0])
		cs = nil
		for _, x := range u.sessions {
			if x.n == n {
				cs = x
			}
		}
	}
	if cs == nil {
		u.say("no such session; /sessions lists them")
		return
	}
	u.say("-- closing session %d with %s …", cs.n, escapeTerminal(cs.s.Peer))
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		cs.s.Close() // bounded by the stream's close timeout; the reader then reports the end
	}()
}

func (u *ui) cmdQuit([]string) {
	for _, p := range u.offers {
		p.answer(xtls.Decision{Decline: true})
	}
	u.offers = nil
	u.quit = true
}
