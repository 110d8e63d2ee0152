package xtls

import (
	"context"
	"errors"
	"fmt"

	"github.com/xtlsjingle/xtlsjingle/pubkeys"
)

// servePubkeys answers the peer's <pubkeys/> requests inside the end-to-end stream with our
// client certificate (XTLS-19, XTLS-21, PK-1): the stream's peer is authenticated by TLS, so
// no further access control is needed (PK-4). The handler lives as long as the stream.
func (s *Session) servePubkeys() {
	cert := s.c.cfg.Identity.Certificate()
	if len(cert.Certificate) == 0 {
		return
	}
	pubkeys.Serve(s.Stream, pubkeys.KeyInfo{Cert: cert.Certificate[0]})
}

// PeerKeys asks the peer for its certificates over the end-to-end stream (XTLS-19; never over
// the server connection, XTLS-20) and checks that the client certificate it returns is the one
// it presented in this session's TLS handshake (PK-12). It returns that certificate and any
// further ones (e.g. a user certificate, PK-2), which the caller may pin for the peer's bare
// JID after asking the user.
func (s *Session) PeerKeys(ctx context.Context) (client pubkeys.KeyInfo, others []pubkeys.KeyInfo, err error) {
	if s.tls == nil || s.Stream == nil {
		return client, nil, errors.New("xtls: session not established")
	}
	cs := s.tls.ConnectionState()
	if len(cs.PeerCertificates) != 1 {
		return client, nil, ErrCertificate
	}
	keys, err := pubkeys.Fetch(ctx, s.Stream, "")
	if err != nil {
		return client, nil, fmt.Errorf("xtls: pubkeys request to %s: %w", s.Peer, err)
	}
	return pubkeys.VerifyPeer(keys, cs.PeerCertificates[0].Raw)
}
