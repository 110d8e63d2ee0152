// Package xtls implements the XTLS Jingle security precondition
// (draft-meyer-xmpp-e2e-encryption, protoXEP jingle-xtls 0.0.4, namespace
// urn:xmpp:jingle:security:xtls:0) with TLS 1.3 and a password bootstrap (XSRP).
package xtls
