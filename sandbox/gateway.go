package sandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/custodyflows/custodyflows/planbok"
	"github.com/custodyflows/custodyflows/sandbox/keys"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"field": func(v *gatewayView, name, label, autocomplete string) fieldView {
		return fieldView{Name: name, Label: label, Autocomplete: autocomplete, Error: v.Errors[name]}
	},
	"add": func(a, b int) int { return a + b },
}).ParseFS(templateFS, "templates/*.html"))

// gatewayView is the data of a Gateway page.
type gatewayView struct {
	Title       string
	Task        string
	Action      string
	CSRF        string
	Errors      map[string]string
	FormError   string
	Method      string // chosen recovery method, kept across a failed submit
	Email       string
	Questions   [3]string
	Recovery    string // reset-pin: the customer's recovery method
	MaskedEmail string
	Blockchains []string
	ReturnPath  string // export: the Gateway route that sends the user back

	Final     bool
	Message   string
	ReturnURL string
}

type fieldView struct {
	Name, Label, Autocomplete, Error string
}

// taskTitles name the Gateway page of each task.
var taskTitles = map[string]string{
	string(planbok.TaskInitialize):        "Set up your PIN",
	string(planbok.TaskRecovery):          "Set up account recovery",
	string(planbok.TaskUpdatePIN):         "Change your PIN",
	string(planbok.TaskResetPIN):          "Reset your PIN",
	string(planbok.TaskExportPrivateKeys): "Export your private keys",
	string(planbok.TaskCreateWallets):     "Create wallets",
}

// setPageHeaders makes Gateway pages unframeable, uncacheable and free of
// anything but their own inline styles.
func setPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func (s *Sandbox) render(w http.ResponseWriter, status int, v *gatewayView) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "page", v); err != nil {
		s.log.Error("sandbox: render gateway page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (s *Sandbox) renderFinal(w http.ResponseWriter, status int, title, message, returnURL string) {
	s.render(w, status, &gatewayView{Title: title, Final: true, Message: message, ReturnURL: returnURL})
}

// csrfToken is the per-challenge form token: an HMAC of the challenge id
// under the sandbox's persisted secret.
func (s *Sandbox) csrfToken(challengeID string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("gateway-csrf:" + challengeID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// returnURL is the app's redirectUrl with challengeId and status added to
// its query.
func returnURL(ch *challenge) string {
	u, err := url.Parse(ch.RedirectURL)
	if err != nil {
		return ch.RedirectURL
	}
	q := u.Query()
	q.Set("challengeId", ch.ID)
	q.Set("status", ch.Status)
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Sandbox) gatewayIndex(w http.ResponseWriter, r *http.Request) {
	s.renderFinal(w, http.StatusOK, "Planbok sandbox",
		"This is the offline Planbok sandbox. Its Gateway pages are reached through the redirectUrl of a challenge created with the API.", "")
}

// loadForPage loads a challenge and its customer for a Gateway page, or
// renders the page that explains why there is nothing to do.
func (s *Sandbox) loadForPage(w http.ResponseWriter, r *http.Request) (*challenge, *customer, bool) {
	ch, err := findChallenge(s.db.x, r.PathValue("challengeId"), s.now())
	if err != nil {
		s.log.Error("sandbox: gateway load challenge", "err", err)
		s.renderFinal(w, http.StatusInternalServerError, "Something went wrong", "Please try again.", "")
		return nil, nil, false
	}
	if ch == nil {
		s.renderFinal(w, http.StatusNotFound, "This link has expired",
			"This request does not exist or has expired. Go back to the app and start again.", "")
		return nil, nil, false
	}
	c, err := findCustomer(s.db.x, ch.CustomerID)
	if err != nil || c == nil {
		s.renderFinal(w, http.StatusInternalServerError, "Something went wrong", "Please try again.", "")
		return nil, nil, false
	}
	if ch.Status != planbok.ChallengePending {
		s.renderFinished(w, http.StatusOK, ch, "")
		return nil, nil, false
	}
	if c.Status == planbok.CustomerLocked && ch.Task != string(planbok.TaskResetPIN) {
		s.renderFinal(w, http.StatusForbidden, "Your account is locked",
			"Too many wrong PINs were entered, so your account is locked. Reset your PIN from the app to unlock it.", "")
		return nil, nil, false
	}
	return ch, c, true
}

func (s *Sandbox) renderFinished(w http.ResponseWriter, status int, ch *challenge, message string) {
	title := taskTitles[ch.Task]
	if message == "" {
		message = "This request is complete. You can return to the app."
		if ch.Status == planbok.ChallengeFailed {
			message = "This request failed. Return to the app to try again."
		}
	}
	s.renderFinal(w, status, title, message, returnURL(ch))
}

// view is the form page of ch.
func (s *Sandbox) view(ch *challenge, c *customer) *gatewayView {
	v := &gatewayView{
		Title:       taskTitles[ch.Task],
		Task:        ch.Task,
		Action:      "/gateway/challenges/" + ch.ID,
		CSRF:        s.csrfToken(ch.ID),
		Errors:      map[string]string{},
		Questions:   SecurityQuestions,
		Recovery:    c.RecoveryMethod,
		MaskedEmail: maskEmail(c.RecoveryEmail),
		Blockchains: ch.blockchains(),
		ReturnPath:  "/gateway/challenges/" + ch.ID + "/return",
		Method:      methodQuestions,
	}
	return v
}

func maskEmail(e string) string {
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" {
		return ""
	}
	return local[:1] + "***@" + domain
}

func (s *Sandbox) gatewayPage(w http.ResponseWriter, r *http.Request) {
	ch, c, ok := s.loadForPage(w, r)
	if !ok {
		return
	}
	s.render(w, http.StatusOK, s.view(ch, c))
}

// gatewayReturn sends the user back to the app once the challenge ended
// (the export page's link, since its form answers with the CSV).
func (s *Sandbox) gatewayReturn(w http.ResponseWriter, r *http.Request) {
	ch, err := findChallenge(s.db.x, r.PathValue("challengeId"), s.now())
	if err != nil || ch == nil {
		s.renderFinal(w, http.StatusNotFound, "This link has expired",
			"This request does not exist or has expired. Go back to the app and start again.", "")
		return
	}
	if ch.Status == planbok.ChallengePending {
		http.Redirect(w, r, "/gateway/challenges/"+ch.ID, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, returnURL(ch), http.StatusSeeOther)
}

// gatewaySubmit handles a Gateway form through complete, the code path
// the test helper uses too.
func (s *Sandbox) gatewaySubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderFinal(w, http.StatusBadRequest, "Something went wrong", "The form could not be read. Go back and try again.", "")
		return
	}
	id := r.PathValue("challengeId")
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.csrfToken(id))) {
		s.renderFinal(w, http.StatusForbidden, "Request refused",
			"This form could not be verified. Open the link from the app again.", "")
		return
	}
	ch, c, ok := s.loadForPage(w, r)
	if !ok {
		return
	}
	v := s.view(ch, c)
	f := r.PostForm
	v.Method, v.Email = f.Get("method"), strings.TrimSpace(f.Get("email"))
	in, ferr := formInput(ch.Task, c.RecoveryMethod, f)
	if ferr != nil {
		v.Errors[ferr.Field] = ferr.Message
		s.render(w, ferr.Status, v)
		return
	}
	o, err := s.complete(r.Context(), ch.ID, in)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.Error("sandbox: gateway complete", "challengeId", ch.ID, "err", err)
			v.FormError = "Something went wrong. Please try again."
			s.render(w, http.StatusInternalServerError, v)
			return
		}
		switch {
		case ae.Status == http.StatusNotFound || ae.Status == http.StatusConflict || ae.Status == http.StatusForbidden:
			if _, _, ok := s.loadForPage(w, r); ok { // else it rendered why: expired, finished or locked
				v.FormError = ae.Message
				s.render(w, ae.Status, v)
			}
		case ae.Attempts != nil && *ae.Attempts == 0:
			failed, _ := findChallenge(s.db.x, ch.ID, s.now())
			if failed == nil {
				failed = ch
			}
			s.renderFinished(w, http.StatusUnprocessableEntity, failed, ae.Message)
		default:
			if ae.Field == "" {
				v.FormError = ae.Message
			} else {
				v.Errors[errorField(ae.Field)] = ae.Message
			}
			s.render(w, ae.Status, v)
		}
		return
	}
	if o.ch.Task == string(planbok.TaskExportPrivateKeys) {
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="wallets-%s.csv"`, o.customer.ID))
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		w.Write(o.csv)
		clear(o.csv)
		return
	}
	http.Redirect(w, r, returnURL(o.ch), http.StatusSeeOther)
}

// errorField maps an error's field to the form field that shows it.
func errorField(f string) string {
	if f == "answers" {
		return "answer1"
	}
	return f
}

// formInput turns a Gateway form into the completion input; it checks
// only what the helper has no equivalent of (confirmation fields).
func formInput(task, recovery string, f url.Values) (CompleteInput, *apiError) {
	var in CompleteInput
	confirm := func(pin, confirmField string) *apiError {
		if keys.ValidPIN(pin) && f.Get(confirmField) != pin {
			return fieldErr(http.StatusBadRequest, confirmField, "The PINs do not match")
		}
		return nil
	}
	recoveryFromForm := func(allowNone bool) (*RecoveryInput, *apiError) {
		switch m := f.Get("method"); m {
		case methodQuestions:
			return &RecoveryInput{Method: m, Answers: []string{f.Get("answer1"), f.Get("answer2"), f.Get("answer3")}}, nil
		case methodEmail:
			return &RecoveryInput{Method: m, Email: strings.TrimSpace(f.Get("email"))}, nil
		case "none":
			if allowNone {
				return nil, nil
			}
		}
		return nil, fieldErr(http.StatusBadRequest, "method", "Choose a recovery method")
	}
	var e *apiError
	switch planbok.Task(task) {
	case planbok.TaskInitialize:
		in.PIN = f.Get("pin")
		if e = confirm(in.PIN, "confirmPin"); e == nil {
			in.Recovery, e = recoveryFromForm(true)
		}
	case planbok.TaskRecovery:
		in.PIN = f.Get("pin")
		in.Recovery, e = recoveryFromForm(false)
	case planbok.TaskUpdatePIN:
		in.CurrentPIN, in.NewPIN = f.Get("currentPin"), f.Get("newPin")
		e = confirm(in.NewPIN, "confirmNewPin")
	case planbok.TaskResetPIN:
		in.NewPIN = f.Get("newPin")
		if recovery == methodEmail {
			in.Recovery = &RecoveryInput{EmailCode: strings.TrimSpace(f.Get("emailCode"))}
		} else {
			in.Recovery = &RecoveryInput{Answers: []string{f.Get("answer1"), f.Get("answer2"), f.Get("answer3")}}
		}
		e = confirm(in.NewPIN, "confirmNewPin")
	case planbok.TaskExportPrivateKeys, planbok.TaskCreateWallets:
		in.PIN = f.Get("pin")
	}
	return in, e
}
