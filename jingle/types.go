package jingle

import "strconv"

// Namespaces of XEP-0166 (SPEC §1, CONF-1).
const (
	// NS is the Jingle namespace (urn:xmpp:jingle:1); also the disco feature (J-39).
	NS = "urn:xmpp:jingle:1"
	// NSErrors is the namespace of the Jingle application error conditions.
	NSErrors = "urn:xmpp:jingle:errors:1"
)

// Action is the value of the action attribute of <jingle/> (SPEC §3.1: the 15 actions of the
// XEP-0166 schema). The zero value is not a valid action.
type Action uint8

// The actions of XEP-0166.
const (
	ContentAccept Action = iota + 1
	ContentAdd
	ContentModify
	ContentReject
	ContentRemove
	DescriptionInfo
	SecurityInfo
	SessionAccept
	SessionInfo
	SessionInitiate
	SessionTerminate
	TransportAccept
	TransportInfo
	TransportReject
	TransportReplace
)

var actionNames = [...]string{
	ContentAccept:    "content-accept",
	ContentAdd:       "content-add",
	ContentModify:    "content-modify",
	ContentReject:    "content-reject",
	ContentRemove:    "content-remove",
	DescriptionInfo:  "description-info",
	SecurityInfo:     "security-info",
	SessionAccept:    "session-accept",
	SessionInfo:      "session-info",
	SessionInitiate:  "session-initiate",
	SessionTerminate: "session-terminate",
	TransportAccept:  "transport-accept",
	TransportInfo:    "transport-info",
	TransportReject:  "transport-reject",
	TransportReplace: "transport-replace",
}

// String returns the wire name of the action, e.g. "session-initiate".
func (a Action) String() string {
	if a == 0 || int(a) >= len(actionNames) {
		return "action(" + strconv.Itoa(int(a)) + ")"
	}
	return actionNames[a]
}

func (a Action) valid() bool { return a != 0 && int(a) < len(actionNames) }

// parseAction maps a wire name to its Action; ok is false for unknown names (J-13).
func parseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if i != 0 && n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// State is the state of a session (SPEC §3.2).
type State uint8

// Session states. A session is created in StatePending (session-initiate sent or acknowledged),
// becomes StateActive with session-accept and StateEnded as soon as session-terminate is sent or
// received (J-25).
const (
	StatePending State = iota + 1
	StateActive
	StateEnded
)

// String returns "pending", "active" or "ended".
func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateActive:
		return "active"
	case StateEnded:
		return "ended"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Creator names the party that created a content (J-19).
type Creator string

// The two creators.
const (
	CreatorInitiator Creator = "initiator"
	CreatorResponder Creator = "responder"
)

// Senders is the senders attribute of a content: who sends application data. The empty value
// means the attribute is absent (default both); it is REQUIRED in content-modify (J-21).
type Senders string

// The senders values of XEP-0166.
const (
	SendersBoth      Senders = "both"
	SendersInitiator Senders = "initiator"
	SendersNone      Senders = "none"
	SendersResponder Senders = "responder"
)

func (s Senders) valid() bool {
	switch s {
	case "", SendersBoth, SendersInitiator, SendersNone, SendersResponder:
		return true
	}
	return false
}

// Condition is a reason condition of <reason/> (SPEC §3.1: 17 conditions).
type Condition string

// The reason conditions of XEP-0166.
const (
	AlternativeSession      Condition = "alternative-session"
	Busy                    Condition = "busy"
	Cancel                  Condition = "cancel"
	ConnectivityError       Condition = "connectivity-error"
	Decline                 Condition = "decline"
	Expired                 Condition = "expired"
	FailedApplication       Condition = "failed-application"
	FailedTransport         Condition = "failed-transport"
	GeneralError            Condition = "general-error"
	Gone                    Condition = "gone"
	IncompatibleParameters  Condition = "incompatible-parameters"
	MediaError              Condition = "media-error"
	SecurityError           Condition = "security-error"
	Success                 Condition = "success"
	Timeout                 Condition = "timeout"
	UnsupportedApplications Condition = "unsupported-applications"
	UnsupportedTransports   Condition = "unsupported-transports"
)

func (c Condition) valid() bool {
	switch c {
	case AlternativeSession, Busy, Cancel, ConnectivityError, Decline, Expired, FailedApplication,
		FailedTransport, GeneralError, Gone, IncompatibleParameters, MediaError, SecurityError,
		Success, Timeout, UnsupportedApplications, UnsupportedTransports:
		return true
	}
	return false
}

// Jingle is the <jingle xmlns='urn:xmpp:jingle:1'/> element (SPEC §3.1).
type Jingle struct {
	Action    Action
	SID       string
	Initiator string // sent on session-initiate only; ignored on input elsewhere (J-15, CONF-8)
	Responder string // sent on session-accept only
	Contents  []Content
	Reason    *Reason
	// Info is the one child element from another namespace, e.g. the payload of session-info
	// (nil for an empty session-info, which is a ping, J-29). Raw XML, see Content.
	Info []byte
}

// Content is a <content/> element. Description, Transport and Security each hold exactly one
// XML element (or nil when absent) that jingle does not interpret: on input they are
// canonically re-serialised (every element that changes namespace carries its own xmlns
// declaration, so they are self-contained whatever prefixes the sender used); on output they are
// checked and written the same way.
type Content struct {
	Creator     Creator
	Name        string
	Disposition string  // empty: absent (default "session", J-12)
	Senders     Senders // empty: absent (default both)
	Description []byte
	Transport   []byte
	Security    []byte
}

// Reason is the <reason/> element (J-23, J-27).
type Reason struct {
	Condition Condition
	// AlternativeSID is the <sid/> of <alternative-session/> (only with that condition).
	AlternativeSID string
	Text           string
	Lang           string // xml:lang of <text/>, if any
	// Extra is the one optional child element from another namespace (raw XML).
	Extra []byte
}
