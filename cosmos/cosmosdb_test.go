package cosmos

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
)

// emulatorKey is the Cosmos DB emulator's published well-known key.
const emulatorKey = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

// crossPartitionHeader works around @vercel/cosmosdb-server, which answers
// 500 instead of 404 for a missing item unless a request carries this header.
// Tests only: real Cosmos DB needs nothing of the sort.
type crossPartitionHeader struct{}

func (crossPartitionHeader) Do(r *policy.Request) (*http.Response, error) {
	r.Raw().Header.Set("x-ms-documentdb-query-enablecrosspartition", "True")
	return r.Next()
}

func testClientOptions() *azcosmos.ClientOptions {
	return &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{
		PerCallPolicies: []policy.Policy{crossPartitionHeader{}},
	}}
}

// TestCosmosContract runs the contract against a Cosmos-compatible server;
// .ci/cosmos-server.sh starts one and prints COSMOS_TEST_ENDPOINT.
func TestCosmosContract(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip(`COSMOS_TEST_ENDPOINT is not set; to run against @vercel/cosmosdb-server: eval "$(.ci/cosmos-server.sh)"`)
	}
	runContract(t, func(t *testing.T) *Store { return mustOpenCosmos(t, endpoint) })
}

// mustOpenCosmos provisions a database of its own for the test and deletes
// it afterwards.
func mustOpenCosmos(t *testing.T, endpoint string) *Store {
	t.Helper()
	database := "test-" + rand.Text()[:10]
	s, err := OpenCosmos(t.Context(), CosmosConfig{Endpoint: endpoint, Database: database, Key: emulatorKey, ClientOptions: testClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Provision(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := s.b.(*cosmosDB).client().NewDatabase(database)
		if err == nil {
			_, err = db.Delete(context.Background(), nil)
		}
		if err != nil {
			t.Errorf("deleting test database %s: %v", database, err)
		}
		s.Close()
	})
	return s
}

func TestCosmosProvisionIsRepeatable(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip("COSMOS_TEST_ENDPOINT is not set")
	}
	s := mustOpenCosmos(t, endpoint)
	if err := s.Provision(t.Context()); err != nil {
		t.Fatalf("second Provision: %v", err)
	}
}

func TestOpenCosmosConfig(t *testing.T) {
	for _, cfg := range []CosmosConfig{
		{Database: "db", Key: emulatorKey},
		{Endpoint: "http://127.0.0.1:1", Key: emulatorKey},
		{Endpoint: "http://127.0.0.1:1", Database: "db"},
	} {
		if _, err := OpenCosmos(t.Context(), cfg); err == nil {
			t.Errorf("OpenCosmos(%+v) succeeded", cfg)
		}
	}
}

// fakeCosmos serves the account lookup every client starts with and hands
// all other requests to dataPlane, counting them.
func fakeCosmos(t *testing.T, addr string, dataPlane http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			url := "http://" + r.Host + "/"
			fmt.Fprintf(w, `{"id":"fake","writableLocations":[{"name":"local","databaseAccountEndpoint":%q}],
				"readableLocations":[{"name":"local","databaseAccountEndpoint":%q}],"enableMultipleWriteLocations":false}`, url, url)
			return
		}
		calls.Add(1)
		dataPlane(w, r)
	}))
	if addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &calls
}

func openFake(t *testing.T, endpoint string) *Store {
	t.Helper()
	s, err := OpenCosmos(t.Context(), CosmosConfig{Endpoint: endpoint, Database: "db", Key: emulatorKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestCosmosFaults(t *testing.T) {
	answer := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ms-retry-after-ms", "5")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":%q,"message":"fault injected"}`, http.StatusText(status))
		}
	}
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // until the body is read, a closed connection goes unnoticed
		<-r.Context().Done()
	}

	for _, tc := range []struct {
		name      string
		dataPlane http.HandlerFunc // nil: nothing listens
		want      error
		wantCalls int64 // data-plane requests per operation; 0: not checked
	}{
		{name: "closed port", want: ErrUnavailable},
		{name: "429", dataPlane: answer(http.StatusTooManyRequests), want: ErrThrottled, wantCalls: int64(1 + retryOptions.MaxRetries)},
		{name: "503", dataPlane: answer(http.StatusServiceUnavailable), want: ErrUnavailable},
		{name: "hangs", dataPlane: hang, want: ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			endpoint := "http://" + closedAddr(t)
			var calls *atomic.Int64
			if tc.dataPlane != nil {
				var srv *httptest.Server
				srv, calls = fakeCosmos(t, "", tc.dataPlane)
				endpoint = srv.URL
			}
			s := openFake(t, endpoint)
			ops := map[string]func(ctx context.Context) error{
				"GetUser": func(ctx context.Context) error { _, err := s.GetUser(ctx, "tenant.u1"); return err },
				"CreateCacheItem": func(ctx context.Context) error {
					_, err := s.CreateCacheItem(ctx, &CacheItem{UserID: "tenant.u1", Kind: "flow", Key: "f1"})
					return err
				},
				"IncrementUsage": func(ctx context.Context) error {
					_, err := s.IncrementUsage(ctx, "tenant.u1", PerDay, time.Now(), 1)
					return err
				},
				"ListCacheItems": func(ctx context.Context) error {
					_, _, err := s.ListCacheItems(ctx, "tenant.u1", CacheFilter{}, PageRequest{})
					return err
				},
				"Ping": s.Ping,
			}
			for name, op := range ops {
				if calls != nil {
					calls.Store(0)
				}
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				start := time.Now()
				err := op(ctx)
				cancel()
				// One second of deadline, plus up to 1.4 s for the first call's
				// account lookup, which ignores deadlines (see retryOptions).
				if elapsed := time.Since(start); elapsed > 3*time.Second {
					t.Errorf("%s took %v", name, elapsed)
				}
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: got %v, want %v", name, err, tc.want)
				}
				if tc.wantCalls != 0 && name != "Ping" && calls.Load() != tc.wantCalls {
					t.Errorf("%s sent %d requests, want %d", name, calls.Load(), tc.wantCalls)
				}
			}
		})
	}
}

// TestCosmosRecoversFromUnreachableStart checks that a store whose first
// calls found Cosmos DB unreachable works as soon as it is back, rather than
// after the SDK's five-minute wait.
func TestCosmosRecoversFromUnreachableStart(t *testing.T) {
	addr := closedAddr(t)
	s := openFake(t, "http://"+addr)
	_, err := s.GetUser(t.Context(), "tenant.u1")
	wantErr(t, "while down", err, ErrUnavailable)

	fakeCosmos(t, addr, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dbs/db/colls/users/docs/tenant.u1" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("etag", `"1"`)
		fmt.Fprint(w, `{"id":"tenant.u1","tenantId":"tenant","objectId":"u1","tier":"free","consent":"granted"}`)
	})
	u, err := s.GetUser(t.Context(), "tenant.u1")
	if err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
	if u.ETag != `"1"` {
		t.Fatalf("ETag = %q", u.ETag)
	}
}
