package entrasim

import (
	"crypto/rsa"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Directory is who can sign in: the simulated tenants and people (the Power
// Automate simulator's), which the stand-in does not own.
type Directory interface {
	// Tenant returns a tenant's id and display name by its id or a domain.
	Tenant(segment string) (id, name string, ok bool)
	// UserFor returns the tenant and object id of the person with this email.
	UserFor(email string) (tenantID, objectID string)
	// Email is the sign-in name of an object id ("" when unknown).
	Email(objectID string) string
	// People are the people the sign-in page offers.
	People() []Person
}

// Person is a simulated person offered on the sign-in page.
type Person struct{ Email, Name, Tenant string }

// Signer signs the stand-in's tokens with the key the simulated APIs verify.
type Signer interface {
	Sign(claims jwt.Claims) string
	PublicKey() *rsa.PublicKey
	JWKS() []byte
	MintAccessToken(tenantID, objectID, audience string, scopes []string, ttl time.Duration) string
}

// Options configure a stand-in.
type Options struct {
	Directory Directory
	Signer    Signer
	// KeySeed derives the key that seals refresh tokens, so that stand-ins with
	// one seed accept each other's tokens; nil means random.
	KeySeed []byte
	// HostTenant is the tenant of the simulated managed identity (where the app
	// is hosted).
	HostTenant string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Entra is the stand-in. All methods are safe for concurrent use.
type Entra struct {
	dir        Directory
	signer     Signer
	hostTenant string
	now        func() time.Time
	st         *entraState
}

// New returns a stand-in that knows the development app (DevClientID).
func New(o Options) *Entra {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Entra{dir: o.Directory, signer: o.Signer, hostTenant: o.HostTenant, now: o.Now,
		st: newEntraState(o.KeySeed, o.Now)}
}
