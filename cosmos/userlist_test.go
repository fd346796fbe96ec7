package cosmos

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

func testListUserIDs(t *testing.T, s *Store) {
	var want []string
	for i := range 7 {
		u := mustCreateUser(t, s, newUser(fmt.Sprintf("obj%02d", i), fmt.Sprintf("u%d@example.com", i)))
		want = append(want, u.ID)
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		ids, next, err := s.ListUserIDs(t.Context(), PageRequest{Size: 3, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 3 || pages > 10 {
			t.Fatalf("page of %d after %d pages", len(ids), pages)
		}
		got = append(got, ids...)
		if next == "" {
			break
		}
		token = next
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v (and no email index documents)", got, want)
	}
}

func TestEmbeddedListUserIDs(t *testing.T) {
	testListUserIDs(t, mustOpenEmbedded(t, t.TempDir()))
	if _, _, err := mustOpenEmbedded(t, t.TempDir()).ListUserIDs(t.Context(), PageRequest{Token: "!!"}); err == nil {
		t.Fatal("a bad token must fail")
	}
}

func TestCosmosListUserIDs(t *testing.T) {
	endpoint := os.Getenv("COSMOS_TEST_ENDPOINT")
	if endpoint == "" {
		t.Skip("COSMOS_TEST_ENDPOINT is not set")
	}
	testListUserIDs(t, mustOpenCosmos(t, endpoint))
}
