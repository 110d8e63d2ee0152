// Package ibb implements XEP-0047: In-Band Bytestreams, as a net.Conn, and the XEP-0261
// Jingle In-Band Bytestreams transport.
//
// A Handler owns the IBB handlers of one link to the XMPP server (any value with the
// methods of Link: gosrcxmpp.Client, or xmpptest.Party in tests) and routes every <open/>,
// <data/> and <close/> by (peer full JID, sid). Handler.Open opens a bytestream,
// Handler.Expect waits for one negotiated out of band, Handler.Accept takes unsolicited ones;
// JingleTransport does the XEP-0261 negotiation for the jingle package.
//
// Conn behaves as net.Pipe does (deadlines, Close unblocking everything) with these IBB
// rules:
//
//   - Write splits data into blocks of at most the negotiated block-size (IBB-5), sends each
//     as an IQ set (or a message, IBB-3/IBB-17) with seq counting up from 0 and wrapping
//     after 65535 (IBB-7), in seq order on the wire, and sends a block only while it is less
//     than the current window ahead of the oldest unacknowledged one (IBB-10). The window
//     adapts between 2 and Config.Window to the acknowledgement round trips; once the
//     acknowledgements show a server's rate limit (Prosody's 10 KiB/s per client, ejabberd's
//     3000 B/s shaper) the Conn measures it and paces by wire bytes instead: 97% of the
//     limit, at most 0.7 s of it in flight, blocks of at most 0.85 s of it (and 3 KB on the
//     wire), so that the limit stays busy without a queue building up in front of later
//     writes, which pass within about one block's time (pace.go). The limit is the
//     connection's, so the streams of one Handler measure it together and share one pace;
//     while pacing, blocks are cut from the bytes written rather than per Write (the short
//     rest of a large write waits for the next one). A block refused with a
//     delivery error of type wait, or resource-constraint or policy-violation, is sent again
//     after growing pauses for up to Config.RetryTimeout (IBB-11); any other refusal, or one
//     that outlasts the retries, closes the stream (IBB-13). Close sends <close/> only after
//     every block was acknowledged, then waits for its result (IBB-15).
//   - Stanzas arrive in any order (the adapter dispatches each on its own goroutine), so the
//     receiver restores seq order inside Config.ReceiveWindow; acks are withheld only while
//     the reader is behind. A duplicate seq (unexpected-request), a block too far ahead, a gap
//     that does not fill within Config.ReorderTimeout, an oversized block or bad Base64
//     (bad-request, IBB-19) ends the stream: the offending stanza gets the XEP-0047 error,
//     the peer gets <close/>, and Read returns the data still held and then a typed error
//     (IBB-12, IBB-14). Data for an unknown sid gets item-not-found (IBB-12, IBB-16).
//
// Input is parsed strictly and with bounds: the sid is an NMTOKEN (IBB-2), block-size is
// 1..65535 on input and at most 32767 on output (ERR-6), Base64 is decoded strictly after
// removing XML white space (ERR-5). The <data/> element of the hot path is read by a byte
// scanner; anything it does not recognise exactly goes to the strict generic decoder, and a
// differential fuzz target checks that both always agree.
package ibb
