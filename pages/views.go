package pages

import "time"

// Base holds what every page needs from the request.
type Base struct {
	Lang      string // "en" | "ko" (negotiated by the caller); unsupported = default language
	Nonce     string // CSP nonce for the script tag
	CSRFName  string // form field name for the CSRF token; "" = "_csrf"
	CSRFToken string // rendered as a hidden input in every POST form
}

// LoginView is the email form. Error is a catalog key or "": for example
// "login.missing_email", "login.invalid_email", "login.throttled",
// "login.send_failed", "login.link_invalid", "form.expired". Notice is a
// catalog key or "": "login.signed_out".
type LoginView struct {
	Base
	Email, RD string
	Error     string
	Notice    string
}

// CodeView is the code form shown after a code was sent.
type CodeView struct {
	Base
	Email, RD  string
	Error      string // catalog key: "code.wrong", "code.expired", "code.too_many", "code.missing", "code.invalid", "code.resend_too_early", "code.throttled", "code.send_failed", "form.expired"
	Notice     string // catalog key: "code.sent" (default), "code.resent"
	CodeLength int    // 0 = 6
	TTLMinutes int    // 0 = lifetime not shown
	ResendIn   int    // seconds until "send a new code" is allowed (0 = now)
}

// ConfirmView is the landing page of the one-click link in the mail. It
// posts Token back, so that opening the link (as mail scanners do) signs
// nobody in.
type ConfirmView struct {
	Base
	Email, Token, RD string
}

// SessionView is one session on the account page. Device is a short human
// label derived from the user agent by the caller.
type SessionView struct {
	ID, Device, IP        string
	CreatedAt, LastSeenAt time.Time
	Current               bool
}

// AccountView is the account page. Notice is a catalog key or "":
// "account.revoked", "account.others_revoked".
type AccountView struct {
	Base
	Email    string
	Sessions []SessionView
	Notice   string
}

// ErrorView is an error page. It shows a friendly title and explanation for
// Kind, never internal error text.
type ErrorView struct {
	Base
	Status    int    // 400, 403, 404, 405, 413, 429, 500, 502, 503, 504
	Kind      string // "bad_request", "forbidden", "not_found", "method_not_allowed", "too_large", "throttled", "server", "unreachable", "timeout", "unavailable", "send_failed", "csrf"; "" = derived from Status
	Email     string // for "forbidden": the signed-in address; the page offers to switch account
	RD        string
	RequestID string // shown small, for support
}

// MailView is the data of the sign-in mail.
type MailView struct {
	Lang       string
	AppName    string // "" = Options.AppName
	Email      string
	Code       string
	TTLMinutes int
	LoginURL   string // absolute URL of the sign-in page
	LinkURL    string // absolute one-click URL ("" = omit the button)
}

// Mail is a rendered sign-in mail. Subject never contains the code, since
// many clients show subjects on a locked screen.
type Mail struct {
	Subject, Text, HTML string
}
