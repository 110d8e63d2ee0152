// Package filetransfer implements XEP-0234: Jingle File Transfer
// (urn:xmpp:jingle:apps:file-transfer:5), with hashes of XEP-0300 (urn:xmpp:hashes:2).
//
// # Wire
//
// File is the <file/> of a <description/> (ParseDescription, File.Description); Checksum and
// Received are the session-info payloads (ParseInfo). The parsers are strict and bounded
// (16 KiB, 4 levels, 64 elements, no comments/PIs/DTDs, strict Base64) and return *Error
// with condition bad-request. They accept what Gajim and Libervia send: hashes in algorithms
// the standard library cannot compute (blake2b-512) are kept but not used for verification,
// <hash-used/> and empty <range/> are understood, and Libervia's checksum, Base64 of the hex
// string instead of the digest, is decoded to the digest.
package filetransfer
