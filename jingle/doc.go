// Package jingle implements XEP-0166: Jingle session signalling (urn:xmpp:jingle:1) with the
// errors of urn:xmpp:jingle:errors:1.
//
// It knows applications, transports and security preconditions only through the small
// interfaces in this package; it imports none of the packages that implement them.
//
// # Wire types
//
// [Parse] and [Jingle.Marshal] decode and encode the <jingle/> element. Descriptions,
// transports, security preconditions, session-info payloads and extra reason elements are raw
// XML (one element each) that jingle does not interpret; they are canonically re-serialised
// (self-contained namespace declarations), so [Namespace] and the owning package can decode
// them regardless of the prefixes the peer used. The decoder is strict and bounded: at most
// 128 KiB per payload, 16 levels of elements, 2048 elements, 32 attributes of 4 KiB each per
// element, 32 KiB of text per element, 16 contents; no comments, processing instructions or
// DTDs; undeclared prefixes and duplicate attributes are refused. Every refusal is an *[Error]
// with condition bad-request. What real clients send is accepted: initiator on every action
// (Gajim, J-15/CONF-8), prefixed namespaces, xml:lang and unknown attributes.
//
// # Sessions
//
// A [Manager] installs the handler for Jingle IQs on a [Link] and answers every one of them
// (J-36) with a result or an [Error] carrying the XMPP condition: unknown or ended sessions get
// item-not-found + unknown-session (J-25, also as soon as we have sent session-terminate),
// actions the state does not allow get unexpected-request + out-of-order (J-37), malformed ones
// bad-request (J-7, J-12, J-13, J-19, J-21), informational payloads the application does not
// understand feature-not-implemented + unsupported-info (J-28), lost tie-breaks conflict +
// tie-break (J-34, J-35). Sessions are keyed by (peer full JID, sid) (J-38).
//
// The initiator calls [Manager.Initiate] and waits for the session-accept [Event]; the
// responder gets the [Session] from [Config].Incoming after the initiate was acknowledged and
// calls [Session.Accept] or [Session.Terminate]. Then either side sends security-info,
// transport-* and other actions with [Session.Send], runs a bound [Transport] with
// [Session.Establish], and ends with [Session.Terminate]. The peer's actions arrive on
// [Session.Events]; transport-info for a content with a bound Transport goes to its HandleInfo
// instead, and its answers in session-accept/transport-accept to HandleAccept.
//
// # Concurrency and ordering
//
// The link may run IQ handlers concurrently and in any order (DESIGN.md "Ordering"). The
// manager processes the incoming actions of one session one at a time; the session's state is
// updated before the IQ result is returned; no lock is held while calling a Transport or the
// link; events are queued (bounded) for the application, never delivered by calling it under a
// lock. Our own actions of one session are sent one at a time, each after the previous was
// acknowledged; an action the peer answers with out-of-order is retried with exponential
// backoff (20 ms, 40 ms, … five retries). A byte-identical repeat of an action that succeeded
// (a duplicated stanza) is acknowledged again without effect. Pending sessions end with
// <timeout/> after [Config].PendingTimeout. [Manager.Close] terminates live sessions and waits
// for every goroutine the manager started; a session's goroutines and timers end with it.
package jingle
