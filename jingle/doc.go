// Package jingle implements XEP-0166: Jingle session signalling (urn:xmpp:jingle:1) with the
// errors of urn:xmpp:jingle:errors:1.
//
// It knows applications, transports and security preconditions only through the small
// interfaces in this package; it imports none of the packages that implement them.
package jingle
