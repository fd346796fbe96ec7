package sealing_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"

	"github.com/flowstudio/mcp/server/sealing"
	"github.com/flowstudio/mcp/server/sealing/sealingtest"
)

func b64key(b byte) string {
	k := make([]byte, sealing.KeySize)
	for i := range k {
		k[i] = b
	}
	return base64.StdEncoding.EncodeToString(k)
}

// fakeVault backs the SDK's fake server with a map of versions.
func fakeVault(t *testing.T) (*azsecrets.Client, func(value string) string) {
	t.Helper()
	const vault = "https://unit.vault.azure.net"
	var mu sync.Mutex
	var versions []string // "id=value"
	add := func(value string) string {
		mu.Lock()
		defer mu.Unlock()
		id := strings.Repeat(string(rune('a'+len(versions))), 32)
		versions = append(versions, id+"="+value)
		return id
	}
	bundle := func(entry string) azsecrets.Secret {
		id, value, _ := strings.Cut(entry, "=")
		sid := azsecrets.ID(vault + "/secrets/" + sealing.DefaultSecretName + "/" + id)
		return azsecrets.Secret{ID: &sid, Value: &value}
	}
	srv := fake.Server{
		GetSecret: func(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			mu.Lock()
			defer mu.Unlock()
			for i := len(versions) - 1; i >= 0 && name == sealing.DefaultSecretName; i-- {
				if version == "" || strings.HasPrefix(versions[i], version+"=") {
					resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: bundle(versions[i])}, nil)
					return
				}
			}
			errResp.SetResponseError(http.StatusNotFound, "SecretNotFound")
			return
		},
		SetSecret: func(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (resp azfake.Responder[azsecrets.SetSecretResponse], errResp azfake.ErrorResponder) {
			id := add(*p.Value)
			resp.SetResponse(http.StatusOK, azsecrets.SetSecretResponse{Secret: bundle(id + "=" + *p.Value)}, nil)
			return
		},
	}
	client, err := azsecrets.NewClient(vault, &azfake.TokenCredential{}, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(&srv)}})
	if err != nil {
		t.Fatal(err)
	}
	return client, add
}

func TestVaultKeysWithSDKFake(t *testing.T) {
	client, add := fakeVault(t)
	v1 := add(b64key(1))
	s := sealing.New(sealing.NewVaultKeys(client, ""), sealing.Options{})
	ctx := t.Context()
	sealed, version, err := s.Seal(ctx, "t.u", []byte("rt"))
	if err != nil || version != v1 {
		t.Fatalf("Seal: %q %v", version, err)
	}
	v2, err := s.Rotate(ctx)
	if err != nil || v2 == v1 {
		t.Fatalf("Rotate: %q %v", v2, err)
	}
	if _, v, _ := s.Seal(ctx, "t.u", []byte("rt")); v != v2 {
		t.Fatalf("sealed with %q after rotation", v)
	}
	fresh := sealing.New(sealing.NewVaultKeys(client, ""), sealing.Options{})
	if got, err := fresh.Open(ctx, "t.u", sealed, v1); err != nil || string(got) != "rt" {
		t.Fatalf("old version: %q %v", got, err)
	}
	if _, err := fresh.Open(ctx, "t.u", sealed, strings.Repeat("f", 32)); !errors.Is(err, sealing.ErrUnknownVersion) {
		t.Fatalf("unknown version: %v", err)
	}
	add("bm90IDMyIGJ5dGVz") // "not 32 bytes"
	if _, _, err := sealing.New(sealing.NewVaultKeys(client, ""), sealing.Options{}).Seal(ctx, "t.u", []byte("x")); err == nil ||
		!strings.Contains(err.Error(), "not base64 of 32 bytes") {
		t.Fatalf("bad secret value: %v", err)
	}
}

func TestVaultKeysOverTheWire(t *testing.T) {
	vault := sealingtest.NewVault(t)
	v1 := vault.Seed(sealing.DefaultSecretName, b64key(7))
	client, err := sealing.NewVaultClient(vault.Server.URL, &azfake.TokenCredential{}, vault.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	s := sealing.New(sealing.NewVaultKeys(client, sealing.DefaultSecretName), sealing.Options{})
	ctx := t.Context()
	sealed, version, err := s.Seal(ctx, "t.u", []byte("refresh"))
	if err != nil || version != v1 {
		t.Fatalf("Seal: %q %v", version, err)
	}
	if vault.Challenges() == 0 {
		t.Error("the client never went through the 401 challenge")
	}
	v2, err := s.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := vault.Versions(sealing.DefaultSecretName); !slices.Equal(got, []string{v1, v2}) {
		t.Fatalf("versions %v, want [%s %s]", got, v1, v2)
	}
	other := sealing.New(sealing.NewVaultKeys(vault.Client(t), sealing.DefaultSecretName), sealing.Options{})
	if got, err := other.Open(ctx, "t.u", sealed, v1); err != nil || string(got) != "refresh" {
		t.Fatalf("open v1 elsewhere: %q %v", got, err)
	}
	if latest, _ := other.Latest(ctx); latest != v2 {
		t.Fatalf("latest %s, want %s", latest, v2)
	}
	// Versions are cached: opening again reads nothing.
	before := len(vault.Requests())
	for range 5 {
		if _, err := other.Open(ctx, "t.u", sealed, v1); err != nil {
			t.Fatal(err)
		}
	}
	if after := len(vault.Requests()); after != before {
		t.Fatalf("%d more vault requests for cached versions", after-before)
	}
	if _, err := other.Open(ctx, "t.u", sealed, strings.Repeat("0", 32)); !errors.Is(err, sealing.ErrUnknownVersion) {
		t.Fatalf("unknown version over the wire: %v", err)
	}
	for _, r := range vault.Requests() {
		if !strings.HasPrefix(r, "GET /secrets/"+sealing.DefaultSecretName) && r != "PUT /secrets/"+sealing.DefaultSecretName {
			t.Errorf("unexpected request %s", r)
		}
	}
}

func TestVaultOutOfReachIsBoundedByTimeout(t *testing.T) {
	vault := sealingtest.NewVault(t)
	vault.Server.Close() // nothing listens any more
	client, err := sealing.NewVaultClient(vault.Server.URL, &azfake.TokenCredential{}, vault.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	s := sealing.New(sealing.NewVaultKeys(client, ""), sealing.Options{Timeout: 2e9})
	if _, _, err := s.Seal(t.Context(), "t.u", []byte("x")); err == nil {
		t.Fatal("sealing with an unreachable vault must fail")
	}
}
