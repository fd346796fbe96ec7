package sealing

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// DefaultSecretName is the Key Vault secret holding the key versions
// (KEYVAULT_SECRET_NAME).
const DefaultSecretName = "refresh-token-key"

// SecretContentType marks the secret's value: base64 of KeySize random bytes.
const SecretContentType = "application/octet-stream; base64"

// VaultKeys keeps key versions as the versions of one Key Vault secret, each
// value base64 of KeySize bytes (the Bicep bootstrap seeds the first one).
type VaultKeys struct {
	client *azsecrets.Client
	name   string
}

// NewVaultKeys returns the source for secret name in the client's vault.
func NewVaultKeys(client *azsecrets.Client, name string) *VaultKeys {
	if name == "" {
		name = DefaultSecretName
	}
	return &VaultKeys{client: client, name: name}
}

// NewVaultClient returns a secrets client for vaultURL that does no I/O until
// its first call. Its retries are bounded so that a slow vault costs seconds,
// not minutes; opts may carry a transport (tests) and is copied.
func NewVaultClient(vaultURL string, cred azcore.TokenCredential, opts *azsecrets.ClientOptions) (*azsecrets.Client, error) {
	var o azsecrets.ClientOptions
	if opts != nil {
		o = *opts
	}
	if o.Retry.MaxRetries == 0 {
		o.Retry = policy.RetryOptions{MaxRetries: 2, TryTimeout: 5 * time.Second, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	}
	return azsecrets.NewClient(strings.TrimRight(vaultURL, "/"), cred, &o)
}

func (v *VaultKeys) decode(resp azsecrets.GetSecretResponse) (string, []byte, error) {
	if resp.ID == nil || resp.Value == nil {
		return "", nil, errors.New("key vault answered without id or value")
	}
	version := resp.ID.Version()
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*resp.Value))
	if err != nil || len(key) != KeySize {
		return "", nil, fmt.Errorf("key vault secret %s version %s is not base64 of %d bytes", v.name, version, KeySize)
	}
	return version, key, nil
}

// Latest reads the secret's current version.
func (v *VaultKeys) Latest(ctx context.Context) (string, []byte, error) {
	resp, err := v.client.GetSecret(ctx, v.name, "", nil)
	if err != nil {
		return "", nil, vaultError(err)
	}
	return v.decode(resp)
}

// Get reads one version of the secret.
func (v *VaultKeys) Get(ctx context.Context, version string) ([]byte, error) {
	resp, err := v.client.GetSecret(ctx, v.name, version, nil)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return nil, ErrUnknownVersion
		}
		return nil, vaultError(err)
	}
	_, key, err := v.decode(resp)
	return key, err
}

// Add sets a new random value, which Key Vault keeps as a new version.
func (v *VaultKeys) Add(ctx context.Context) (string, error) {
	value := base64.StdEncoding.EncodeToString(newKey())
	ct := SecretContentType
	resp, err := v.client.SetSecret(ctx, v.name, azsecrets.SetSecretParameters{Value: &value, ContentType: &ct}, nil)
	if err != nil {
		return "", vaultError(err)
	}
	if resp.ID == nil || resp.ID.Version() == "" {
		return "", errors.New("key vault answered without a version")
	}
	return resp.ID.Version(), nil
}

// vaultError keeps the status and error code of a Key Vault failure, never
// its body.
func vaultError(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("key vault: HTTP %d %s", re.StatusCode, re.ErrorCode)
	}
	return fmt.Errorf("key vault: %w", err)
}
