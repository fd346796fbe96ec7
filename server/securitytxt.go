package server

import (
	"net/http"
	"strings"
	"time"
)

// /.well-known/security.txt (RFC 9116) and the security policy page it links to.
//
// Contact is SECURITY_CONTACT; without it there is no valid file to serve (Contact
// is required), so the route answers 404 and the policy page says no contact is
// set. Expires is a moving date: RFC 9116 asks for less than a year ahead, and a
// fixed date in a binary would go stale, so it is always securityTxtLifetime after
// the start of the current UTC day (the same on every replica on a given day).

const securityTxtLifetime = 180 * 24 * time.Hour

// securityTxt renders the file for this site at now.
func securityTxt(contact, site string, now time.Time) string {
	expires := now.UTC().Truncate(24 * time.Hour).Add(securityTxtLifetime)
	var b strings.Builder
	b.WriteString("# Security contact of FlowStudio MCP (RFC 9116). Please read the policy before reporting.\n")
	b.WriteString("Contact: " + contact + "\n")
	b.WriteString("Expires: " + expires.Format(time.RFC3339) + "\n")
	b.WriteString("Preferred-Languages: en\n")
	b.WriteString("Policy: " + site + "/security\n")
	b.WriteString("Canonical: " + site + "/.well-known/security.txt\n")
	return b.String()
}

func (s *Server) securityTxt(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		http.Error(w, "Forbidden: unknown host", http.StatusForbidden)
		return
	}
	contact := s.deps.Settings.SecurityContact
	if contact == "" {
		http.Error(w, "No security contact is configured on this server (SECURITY_CONTACT).", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write([]byte(securityTxt(contact, s.siteURL(r), time.Now())))
}

// securityPage is the policy: how to report, what to include, what we promise.
func (s *Server) securityPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "security", pageData{Title: "Security", Contact: securityContactView(s.deps.Settings.SecurityContact)})
}

// contactView is the security contact as a page shows it.
type contactView struct {
	URI   string // mailto: or https:
	Label string // the address or URL without its scheme
	Email bool
}

func securityContactView(uri string) *contactView {
	if uri == "" {
		return nil
	}
	if addr, ok := strings.CutPrefix(uri, "mailto:"); ok {
		return &contactView{URI: uri + "?subject=%5BSECURITY%5D%20", Label: addr, Email: true}
	}
	return &contactView{URI: uri, Label: uri}
}
