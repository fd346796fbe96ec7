// Package notify delivers alerts: email over SMTP (github.com/wneessen/go-mail, a
// maintained client that does STARTTLS, SMTP AUTH discovery and correct MIME, which
// hand-written net/smtp code would have to redo) and signed webhook calls to a
// user's URL, with the SSRF defences such a URL needs.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPConfig are the SMTP_* settings.
type SMTPConfig struct {
	Host     string
	Port     int // 587 when 0
	Username string
	Password string
	From     string
}

// Enabled says whether email is configured at all.
func (c SMTPConfig) Enabled() bool { return c.Host != "" }

// Validate checks the settings: a host, a port, a From address, and a username and
// password together or neither.
func (c SMTPConfig) Validate() error {
	if !c.Enabled() {
		if c.From != "" || c.Username != "" || c.Password != "" || c.Port != 0 {
			return errors.New("SMTP_HOST is required when any other SMTP_ setting is set")
		}
		return nil
	}
	if strings.ContainsAny(c.Host, "/:@ ") {
		return errors.New("SMTP_HOST must be a host name or address, without scheme or port")
	}
	if c.Port < 0 || c.Port > 65535 {
		return errors.New("SMTP_PORT must be a port number")
	}
	if c.From == "" {
		return errors.New("SMTP_FROM is required with SMTP_HOST")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return errors.New("SMTP_FROM is not an email address")
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("SMTP_USERNAME and SMTP_PASSWORD go together")
	}
	return nil
}

// Mailer sends plain-text email through one SMTP server.
type Mailer struct {
	cfg SMTPConfig
}

// NewMailer checks cfg and returns a mailer.
func NewMailer(cfg SMTPConfig) (*Mailer, error) {
	if cfg.Port == 0 {
		cfg.Port = 587
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("SMTP_HOST is not set")
	}
	return &Mailer{cfg: cfg}, nil
}

// loopbackHost says whether host names this machine: the only place a relay may
// be reached without TLS.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// client builds the go-mail client: implicit TLS on port 465; elsewhere STARTTLS
// is mandatory unless the relay is on loopback (a local test server such as
// Mailpit), where it is used when offered.
func (m *Mailer) client() (*gomail.Client, error) {
	opts := []gomail.Option{gomail.WithPort(m.cfg.Port), gomail.WithTimeout(20 * time.Second)}
	switch {
	case m.cfg.Port == 465:
		opts = append(opts, gomail.WithSSL())
	case loopbackHost(m.cfg.Host):
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if m.cfg.Username != "" {
		// Discovery picks the strongest mechanism the server offers; go-mail refuses
		// PLAIN and LOGIN over an unencrypted connection to a remote host.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(m.cfg.Username), gomail.WithPassword(m.cfg.Password))
	}
	return gomail.NewClient(m.cfg.Host, opts...)
}

// Send sends one message to every address in to. Errors name their stage, never
// the addresses or the server's reply text.
func (m *Mailer) Send(ctx context.Context, to []string, subject, body string) error {
	msg := gomail.NewMsg()
	if err := msg.From(m.cfg.From); err != nil {
		return errors.New("smtp: bad From address")
	}
	if err := msg.To(to...); err != nil {
		return errors.New("smtp: bad recipient address")
	}
	msg.Subject(subject)
	msg.SetBodyString(gomail.TypeTextPlain, body)
	c, err := m.client()
	if err != nil {
		return fmt.Errorf("smtp: client: %w", errKind("config"))
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("smtp: send to %d recipients: %w", len(to), errKind(sendKind(err)))
	}
	return nil
}

// sendKind classifies a send error without its text.
func sendKind(err error) string {
	var se *gomail.SendError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "smtp_timeout"
	case errors.As(err, &se):
		return "smtp_" + strings.ToLower(strings.ReplaceAll(se.Reason.String(), " ", "_"))
	}
	return "smtp"
}

// kindError carries only a classification, for logs that must not hold addresses.
type kindError string

func (e kindError) Error() string { return string(e) }
func (e kindError) Kind() string  { return string(e) }

func errKind(k string) error { return kindError(k) }

// Addr is host:port, for messages.
func (c SMTPConfig) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
