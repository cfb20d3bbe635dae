package portal

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"gatehouse/email"
	"gatehouse/pages"
	"gatehouse/session"
	"gatehouse/signin"
)

func (s *Portal) handleLoginPage(c *fiber.Ctx) error {
	rs := s.settings(c)
	rd := rs.Redirects.Safe(c.Query("rd"))
	addr := ""
	if e, err := email.Parse(c.Query("email")); err == nil {
		addr = e
	}
	notice := ""
	if c.Query("notice") == "signed_out" {
		notice = "login.signed_out"
	}
	return s.render(c, http.StatusOK, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Login(buf, pages.LoginView{Base: b, Email: addr, RD: rd, Notice: notice})
	})
}

// handleLogin sends a code and shows the code form.
func (s *Portal) handleLogin(c *fiber.Ctx) error {
	rs := s.settings(c)
	rd := rs.Redirects.Safe(c.FormValue("rd"))
	raw := c.FormValue("email")
	addr, err := email.Parse(raw)
	if err != nil {
		return s.render(c, http.StatusBadRequest, func(b pages.Base, buf *bytes.Buffer) error {
			return rs.Pages.Login(buf, pages.LoginView{Base: b, Email: raw, RD: rd, Error: "login.invalid_email"})
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	resend := c.FormValue("resend") != ""
	sent, err := s.signin.Send(ctx, &rs.SignIn, addr, rd, resend, s.clientOf(c))
	if errors.Is(err, signin.ResendTooEarly) {
		// The page counts the cooldown down, but without its script a
		// visitor can ask too early: say so instead of claiming a new code
		// went out.
		return s.renderCode(c, http.StatusTooManyRequests, addr, rd, signin.ResendTooEarly.Key(), "code.sent", sent.ResendIn)
	}
	if errors.Is(err, signin.SendFailed) {
		return s.render(c, http.StatusServiceUnavailable, func(b pages.Base, buf *bytes.Buffer) error {
			return rs.Pages.Error(buf, pages.ErrorView{Base: b, Status: http.StatusServiceUnavailable, Kind: "send_failed", Email: addr, RD: rd, RequestID: s.facts(c).RequestID})
		})
	}
	if err != nil {
		return err
	}
	notice := "code.sent"
	if resend {
		notice = "code.resent"
	}
	return s.renderCode(c, http.StatusOK, addr, rd, "", notice, sent.ResendIn)
}

func (s *Portal) renderCode(c *fiber.Ctx, status int, email, rd, errKey, notice string, resendIn int) error {
	rs := s.settings(c)
	return s.render(c, status, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Code(buf, pages.CodeView{
			Base: b, Email: email, RD: rd, Error: errKey, Notice: notice,
			CodeLength: rs.SignIn.OTP.Length, TTLMinutes: signin.TTLMinutes(rs.SignIn.OTP.TTL), ResendIn: resendIn,
		})
	})
}

// handleVerify checks the code; on success it sets the session cookie and
// sends the browser where it was going.
func (s *Portal) handleVerify(c *fiber.Ctx) error {
	rs := s.settings(c)
	rd := rs.Redirects.Safe(c.FormValue("rd"))
	addr, err := email.Parse(c.FormValue("email"))
	if err != nil {
		return s.render(c, http.StatusBadRequest, func(b pages.Base, buf *bytes.Buffer) error {
			return rs.Pages.Login(buf, pages.LoginView{Base: b, RD: rd, Error: "login.invalid_email"})
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	token, _, err := s.signin.Verify(ctx, &rs.SignIn, addr, c.FormValue("code"), s.clientOf(c))
	if key, ok := userError(err); ok {
		wait, werr := s.signin.ResendWait(ctx, &rs.SignIn, addr)
		if werr != nil {
			return werr
		}
		return s.renderCode(c, http.StatusUnauthorized, addr, rd, key, "", wait)
	}
	if err != nil {
		return err
	}
	return s.signedIn(c, token, rd)
}

// userError reports whether err is a sign-in outcome to show the user, and
// its catalog key.
func userError(err error) (string, bool) {
	var f signin.Failure
	if errors.As(err, &f) && (f == signin.WrongCode || f == signin.CodeExpired || f == signin.TooMany) {
		return f.Key(), true
	}
	return "", false
}

func (s *Portal) signedIn(c *fiber.Ctx, token, rd string) error {
	addCookie(c, s.sessions.Cookie(token))
	c.Set("Cache-Control", "no-store")
	return c.Redirect(rd, http.StatusSeeOther)
}

// handleLinkPage is where the one-click link in the mail lands. It only shows
// a confirmation button: a mail scanner that follows the link signs nobody
// in.
func (s *Portal) handleLinkPage(c *fiber.Ctx) error {
	rs := s.settings(c)
	token := c.Query("t")
	if !session.ValidToken(token) {
		return s.Fail(c, http.StatusBadRequest, "bad_request", "")
	}
	rd := rs.Redirects.Safe(c.Query("rd"))
	return s.render(c, http.StatusOK, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Confirm(buf, pages.ConfirmView{Base: b, Token: token, RD: rd})
	})
}

func (s *Portal) handleLink(c *fiber.Ctx) error {
	rs := s.settings(c)
	rd := rs.Redirects.Safe(c.FormValue("rd"))
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	token, _, err := s.signin.ConsumeLink(ctx, &rs.SignIn, c.FormValue("token"), s.clientOf(c))
	if _, ok := userError(err); ok {
		return s.render(c, http.StatusUnauthorized, func(b pages.Base, buf *bytes.Buffer) error {
			return rs.Pages.Login(buf, pages.LoginView{Base: b, RD: rd, Error: "login.link_invalid"})
		})
	}
	if err != nil {
		return err
	}
	return s.signedIn(c, token, rd)
}

// handleLogout ends the session on the server and clears the cookie.
func (s *Portal) handleLogout(c *fiber.Ctx) error {
	if err := s.signOut(c); err != nil {
		return err
	}
	rd := c.FormValue("rd")
	target := Prefix + "/login?notice=signed_out"
	if rd != "" {
		target = s.settings(c).Redirects.Safe(rd)
	}
	c.Set("Cache-Control", "no-store")
	return c.Redirect(target, http.StatusSeeOther)
}

// signOut ends the current session, if any, and clears the cookie.
//
// The cookie is cleared only once the server no longer knows the session: if
// the store fails, the user keeps the cookie and can try again, instead of
// believing they signed out while the session lives on.
func (s *Portal) signOut(c *fiber.Ctx) error {
	id, err := s.current(c)
	if errors.Is(err, session.ErrNoSession) {
		addCookie(c, s.sessions.ClearCookie())
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := s.sessions.End(ctx, id.ID); err != nil {
		return err
	}
	addCookie(c, s.sessions.ClearCookie())
	cl := s.clientOf(c)
	s.record(cl.IP, cl.UserAgent, "signout", id.Email, "ok", "")
	return nil
}

// requireSession returns the signed-in identity, or sends a browser to sign
// in (ok=false) and an API client a 401.
func (s *Portal) requireSession(c *fiber.Ctx) (session.Identity, bool, error) {
	id, err := s.current(c)
	if errors.Is(err, session.ErrNoSession) {
		if IsNavigation(c.Method(), c.Request().Header.Peek("Accept")) {
			c.Set("Cache-Control", "no-store")
			return session.Identity{}, false, c.Redirect(LoginPath(c.OriginalURL()), http.StatusSeeOther)
		}
		return session.Identity{}, false, s.JSONError(c, http.StatusUnauthorized, "unauthenticated")
	}
	if err != nil {
		return session.Identity{}, false, err
	}
	return id, true, nil
}

func (s *Portal) handleAccount(c *fiber.Ctx) error {
	id, ok, err := s.requireSession(c)
	if !ok {
		return err
	}
	return s.renderAccount(c, id, c.Query("notice"))
}

func (s *Portal) renderAccount(c *fiber.Ctx, id session.Identity, notice string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	list, err := s.store.ListSessions(ctx, id.Email)
	if err != nil {
		return err
	}
	views := make([]pages.SessionView, 0, len(list))
	for _, ss := range list {
		views = append(views, pages.SessionView{
			ID: ss.ID, Device: deviceLabel(ss.UserAgent), IP: ss.IP,
			CreatedAt: ss.CreatedAt, LastSeenAt: ss.LastSeenAt, Current: ss.ID == id.ID,
		})
	}
	if notice != "account.revoked" && notice != "account.others_revoked" {
		notice = ""
	}
	rs := s.settings(c)
	return s.render(c, http.StatusOK, func(b pages.Base, buf *bytes.Buffer) error {
		return rs.Pages.Account(buf, pages.AccountView{Base: b, Email: id.Email, Sessions: views, Notice: notice})
	})
}

// handleLogoutOthers ends every other session of the signed-in user.
func (s *Portal) handleLogoutOthers(c *fiber.Ctx) error {
	id, ok, err := s.requireSession(c)
	if !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	list, err := s.store.ListSessions(ctx, id.Email)
	if err != nil {
		return err
	}
	if _, err := s.store.DeleteUserSessions(ctx, id.Email, id.ID); err != nil {
		return err
	}
	for _, ss := range list {
		if ss.ID != id.ID {
			s.sessions.Revoke(ss.ID)
		}
	}
	cl := s.clientOf(c)
	s.record(cl.IP, cl.UserAgent, "session.revoked", id.Email, "ok", "all other sessions")
	return c.Redirect(Prefix+"/account?notice=account.others_revoked", http.StatusSeeOther)
}

// handleRevoke ends one of the signed-in user's own sessions.
func (s *Portal) handleRevoke(c *fiber.Ctx) error {
	id, ok, err := s.requireSession(c)
	if !ok {
		return err
	}
	target := c.FormValue("id")
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	list, err := s.store.ListSessions(ctx, id.Email)
	if err != nil {
		return err
	}
	owned := false
	for _, ss := range list {
		owned = owned || ss.ID == target
	}
	if !owned {
		return s.Fail(c, http.StatusNotFound, "not_found", "")
	}
	if err := s.sessions.End(ctx, target); err != nil {
		return err
	}
	cl := s.clientOf(c)
	s.record(cl.IP, cl.UserAgent, "session.revoked", id.Email, "ok", "by user")
	if target == id.ID {
		addCookie(c, s.sessions.ClearCookie())
		return c.Redirect(Prefix+"/login?notice=signed_out", http.StatusSeeOther)
	}
	return c.Redirect(Prefix+"/account?notice=account.revoked", http.StatusSeeOther)
}

// deviceLabel turns a user agent into a short label such as "Firefox on
// Linux" for the account page.
func deviceLabel(ua string) string {
	browser := "Browser"
	for _, b := range []struct{ key, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"},
		{"Safari/", "Safari"}, {"curl/", "curl"},
	} {
		if strings.Contains(ua, b.key) {
			browser = b.name
			break
		}
	}
	system := ""
	for _, o := range []struct{ key, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.key) {
			system = o.name
			break
		}
	}
	if system == "" {
		return browser
	}
	return browser + " · " + system
}

// apiCodeIn is the body of the JSON sign-in calls.
type apiCodeIn struct {
	Email string `json:"email"`
	Code  string `json:"code"`
}

// apiCodeRequest parses a JSON sign-in body and its address. When the body
// or the address is bad it answers 400 itself and returns email "" (err is
// then the answer's own error, usually nil).
func (s *Portal) apiCodeRequest(c *fiber.Ctx) (apiCodeIn, string, error) {
	var in apiCodeIn
	if err := c.BodyParser(&in); err != nil {
		return in, "", s.JSONError(c, http.StatusBadRequest, "bad_request")
	}
	addr, err := email.Parse(in.Email)
	if err != nil {
		return in, "", s.JSONError(c, http.StatusBadRequest, "invalid_email")
	}
	return in, addr, nil
}

// apiSend is the JSON "send me a code".
func (s *Portal) apiSend(c *fiber.Ctx) error {
	_, email, err := s.apiCodeRequest(c)
	if err != nil || email == "" {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	sent, err := s.signin.Send(ctx, &s.settings(c).SignIn, email, "", false, s.clientOf(c))
	if errors.Is(err, signin.SendFailed) {
		return s.JSONError(c, http.StatusServiceUnavailable, "send_failed")
	}
	if err != nil {
		return err
	}
	c.Set("Cache-Control", "no-store")
	return c.Status(http.StatusOK).JSON(fiber.Map{"status": "sent", "email": sent.Email, "resend_in": sent.ResendIn})
}

// apiVerify is the JSON code check; on success it sets the session cookie.
func (s *Portal) apiVerify(c *fiber.Ctx) error {
	in, email, err := s.apiCodeRequest(c)
	if err != nil || email == "" {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	token, sess, err := s.signin.Verify(ctx, &s.settings(c).SignIn, email, in.Code, s.clientOf(c))
	if key, ok := userError(err); ok {
		return s.JSONError(c, http.StatusUnauthorized, strings.ReplaceAll(key, ".", "_"))
	}
	if err != nil {
		return err
	}
	addCookie(c, s.sessions.Cookie(token))
	c.Set("Cache-Control", "no-store")
	return c.JSON(fiber.Map{"email": sess.Email, "session_id": sess.ID, "expires_at": sess.ExpiresAt.UTC().Format(time.RFC3339)})
}

func (s *Portal) apiSession(c *fiber.Ctx) error {
	id, err := s.current(c)
	c.Set("Cache-Control", "no-store")
	if errors.Is(err, session.ErrNoSession) {
		return s.JSONError(c, http.StatusUnauthorized, "unauthenticated")
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"email": id.Email, "session_id": id.ID, "expires_at": id.ExpiresAt.UTC().Format(time.RFC3339)})
}

func (s *Portal) apiSignOut(c *fiber.Ctx) error {
	if err := s.signOut(c); err != nil {
		return err
	}
	c.Set("Cache-Control", "no-store")
	return c.JSON(fiber.Map{"status": "signed_out"})
}
