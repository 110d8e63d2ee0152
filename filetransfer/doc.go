// Package filetransfer implements XEP-0234: Jingle File Transfer
// (urn:xmpp:jingle:apps:file-transfer:5), with hashes of XEP-0300 (urn:xmpp:hashes:2).
//
// # Wire
//
// File is the <file/> of a <description/> (ParseDescription, File.Description); Checksum and
// Received are the session-info payloads (ParseInfo). The parsers are strict and bounded
// (16 KiB, 4 levels, 64 elements, no comments/PIs/DTDs, strict Base64) and return *Error
// with condition bad-request. They accept what Gajim and Libervia send: Gajim's blake2b-512
// (computed by this package, RFC 7693, as XEP-0414 requires), hashes in algorithms we cannot
// compute (kept, not used for verification), <hash-used/> and empty <range/> are understood, and Libervia's checksum, Base64 of the hex
// string instead of the digest, is decoded to the digest.
//
// # Transfers
//
// The application negotiates the Jingle session (jingle.Manager with NS in
// Config.InfoNamespaces, the offer's File.Description as the content's description, a
// Transport from ibb or socks5), runs Session.Establish, and hands the bytestream to Send or
// Receive — after securing it: the data flows over whatever net.Conn the security layer
// yields (the *tls.Conn of XTLS). A bytestream that is not a completed TLS connection is
// refused with <security-error/> unless the user allowed plaintext for that one transfer
// (SendOptions.AllowPlaintext, ReceiveOptions.AllowPlaintext; default false, never silently).
// With XTLS such a bytestream comes only from xtls.Client.OpenPlaintext or
// xtls.Application.Plaintext, for a peer without XTLS and the user's consent per transfer.
// Offered names with invisible format characters such as bidi overrides, or with the line and
// paragraph separators U+2028/U+2029, are refused (ValidName).
//
// The receiver first calls CheckOffer (refuses names that could leave the download
// directory or hide a dot file, unknown or too large sizes, names that exist; reports the
// length of a partial earlier download to resume with a <range offset/> in session-accept),
// then Receive: bytes go to ".<name>.part" inside the directory (opened through os.Root, so
// no path or symlink leads outside), are hashed on the way, and the file is moved to its name
// only after exactly the offered size arrived and its SHA-256 (or SHA-512, SHA3-256,
// SHA3-512, BLAKE2b-512) matched the offer or the sender's <checksum/> session-info, compared in constant
// time. Then the receiver sends <received/> and terminates with <success/>. Failures end the
// session with the reason ReasonFor gives: <decline/> for refused offers, <media-error/> for a
// wrong hash or size, <cancel/> when a context is cancelled, <security-error/> for
// unauthorised plaintext. The peer's reason is reported as *TerminatedError.
package filetransfer
