package server

import (
	_ "embed"
	"net/http"
)

// The help page (how to connect, where the docs are, how to get support) and the
// site icon.

//go:embed web/favicon.ico
var faviconICO []byte

// favicon answers /favicon.ico, which browsers ask for on every page whether or not a
// page names an icon.
func favicon(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "image/x-icon")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(faviconICO)
}

// helpPage is the in-app documentation: connecting a client, the support tool
// (report_bug), the security contact and, when set, the status page.
func (s *Server) helpPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "help", pageData{Title: "Help", Contact: securityContactView(s.deps.Settings.SecurityContact)})
}
