package identity

import (
	"context"
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// TestAppHasExactlyOneCredential: a registration authenticates with a secret or a
// federated credential, never both and never neither; NewApp asks for the managed
// identity only without a secret, and says why it has none.
func TestAppHasExactlyOneCredential(t *testing.T) {
	assertion := func(context.Context) (string, error) { return "jwt", nil }
	for name, c := range map[string]struct {
		app App
		ok  bool
	}{
		"secret":       {App{Authority: "https://a", ClientID: "c", ClientSecret: "s"}, true},
		"federated":    {App{Authority: "https://a", ClientID: "c", Assertion: assertion}, true},
		"both":         {App{Authority: "https://a", ClientID: "c", ClientSecret: "s", Assertion: assertion}, false},
		"neither":      {App{Authority: "https://a", ClientID: "c"}, false},
		"no client id": {App{Authority: "https://a", ClientSecret: "s"}, false},
		"no authority": {App{ClientID: "c", ClientSecret: "s"}, false},
	} {
		if err := c.app.Check(); (err == nil) != c.ok {
			t.Errorf("%s: Check = %v", name, err)
		}
	}

	v, err := App{Authority: "https://a", ClientID: "c", ClientSecret: "s"}.ClientAuth(t.Context())
	if err != nil || v.Encode() != "client_id=c&client_secret=s" {
		t.Fatalf("secret auth %q %v", v.Encode(), err)
	}
	v, err = App{Authority: "https://a", ClientID: "c", Assertion: assertion}.ClientAuth(t.Context())
	if err != nil || v.Get("client_assertion") != "jwt" || v.Get("client_assertion_type") != JWTBearer || v.Has("client_secret") {
		t.Fatalf("federated auth %q %v", v.Encode(), err)
	}
	failing := App{Authority: "https://a", ClientID: "c", Assertion: func(context.Context) (string, error) { return "", errors.New("no identity endpoint") }}
	if _, err := failing.ClientAuth(t.Context()); err == nil {
		t.Fatal("a failing assertion authenticated")
	}

	asked := false
	mi := func() (azcore.TokenCredential, error) {
		asked = true
		return nil, errors.New("no managed identity here")
	}
	if app, err := NewApp("https://a/", "", "c", "s", mi); err != nil || asked || app.Authority != "https://a" || app.Tenant != "organizations" {
		t.Fatalf("with a secret: %+v %v (managed identity asked: %v)", app, err, asked)
	}
	if _, err := NewApp("https://a", "t", "c", "", mi); err == nil || !asked {
		t.Fatalf("without a secret or managed identity: %v", err)
	}
}
