package pubkeys

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// Requester sends an IQ get/set and waits for the answer; *xmlstream.Stream has this method.
type Requester interface {
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
}

// IQHandler installs handlers for incoming IQ get/set; *xmlstream.Stream (and the server link)
// have this method.
type IQHandler interface {
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
}

func sha1Hex(der []byte) string {
	sum := sha1.Sum(der)
	return hex.EncodeToString(sum[:])
}

// Serve answers <pubkeys/> requests (in every accepted namespace, answering in the request's)
// with keys: our client certificate (KeyInfo.JID empty) and optionally the user certificate
// (KeyInfo.JID set, PK-2, PK-4). Install it ONLY on the end-to-end stream, whose peer TLS
// authenticated (PK-1); that authentication is the access-control decision of PK-4. A request
// naming fingerprints gets only the matching keys (PK-6), possibly none. keys are copied.
func Serve(h IQHandler, keys ...KeyInfo) (remove func()) {
	own := make([]KeyInfo, len(keys))
	for i, k := range keys {
		own[i] = KeyInfo{JID: k.JID, Name: k.Name, Cert: bytes.Clone(k.Cert)}
		if own[i].Name == "" {
			own[i].Name = Name(k.Cert)
		}
	}
	handler := func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		if typ != "get" {
			return nil, badRequest("pubkeys requests are IQ get")
		}
		req, err := ParseRequest(payload)
		if err != nil {
			return nil, err
		}
		ans := Keys{Space: req.Space}
		for _, k := range own {
			if len(req.Fingerprints) == 0 {
				ans.Keys = append(ans.Keys, k)
				continue
			}
			for _, f := range req.Fingerprints {
				if matches(f, k.Cert) {
					ans.Keys = append(ans.Keys, k)
					break
				}
			}
		}
		b, err := MarshalKeys(ans)
		if err != nil {
			return nil, &Error{Type: "wait", Condition: "internal-server-error"}
		}
		return b, nil
	}
	return install(h, handler)
}

// Refuse installs, on the server connection, the answer to <pubkeys/> requests in every
// accepted namespace: <not-acceptable/> + <security-required xmlns='urn:xmpp:jingle:errors:1'/>
// (XTLS-20, PK-1). Gajim sends its urn:xmpp:pubkey:2 request this way; it is refused too.
func Refuse(h IQHandler) (remove func()) {
	return install(h, func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, ErrSecurityRequired
	})
}

func install(h IQHandler, f func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) func() {
	var removes []func()
	for _, ns := range []string{NS, NSv0, NSGajim} {
		removes = append(removes, h.HandleIQ(ns, "pubkeys", f))
	}
	return func() {
		for _, r := range removes {
			r()
		}
	}
}

// Fetch asks the peer for its certificates with <pubkeys xmlns='urn:xmpp:tmp:pubkey'/>,
// optionally only those with the given fingerprints (PK-6). r must be the end-to-end stream
// (PK-1: never the server connection); to may be empty (the stream's peer). A stanza error is
// returned as the stream returned it. Check the result with VerifyPeer before pinning anything.
func Fetch(ctx context.Context, r Requester, to string, fps ...Fingerprint) ([]KeyInfo, error) {
	req, err := MarshalRequest(Request{Fingerprints: fps})
	if err != nil {
		return nil, err
	}
	res, err := r.Request(ctx, to, "get", req)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, badRequest("empty pubkeys result")
	}
	k, err := ParseKeys(res)
	if err != nil {
		return nil, err
	}
	return k.Keys, nil
}

// VerifyPeer applies PK-12 to the keys a peer returned: its client certificate (a key without
// jid) must be byte-for-byte the certificate it presented in this session's TLS handshake
// (tlsPeerCert, DER: ConnectionState().PeerCertificates[0].Raw). It returns that key and the
// others (e.g. the user certificate, PK-2), which the caller may pin for the peer's bare JID
// only after this check passed. A client key that differs from the TLS certificate, or no
// matching key at all, fails with ErrPeerMismatch.
func VerifyPeer(keys []KeyInfo, tlsPeerCert []byte) (client KeyInfo, others []KeyInfo, err error) {
	if len(tlsPeerCert) == 0 {
		return KeyInfo{}, nil, fmt.Errorf("pubkeys: no TLS peer certificate")
	}
	found := false
	for _, k := range keys {
		switch {
		case k.JID == "" && bytes.Equal(k.Cert, tlsPeerCert) && !found:
			client, found = k, true
		case k.JID == "":
			// A second client key that is not the TLS certificate: the peer claims a client
			// certificate it did not use. Refuse rather than guess.
			return KeyInfo{}, nil, ErrPeerMismatch
		default:
			others = append(others, k)
		}
	}
	if !found {
		return KeyInfo{}, nil, ErrPeerMismatch
	}
	return client, others, nil
}
