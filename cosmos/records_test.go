package cosmos

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A record written before consentedResources existed reads as "default only", and the
// field is camelCase and left out when empty.
func TestUserConsentedResourcesJSON(t *testing.T) {
	t.Parallel()
	old := `{"id":"t.o","tenantId":"t","objectId":"o","tier":"free","keyGeneration":1,"keyIssuedAt":1,"consent":"granted","createdAt":1,"updatedAt":1}`
	var u User
	if err := json.Unmarshal([]byte(old), &u); err != nil {
		t.Fatal(err)
	}
	if u.ConsentedResources != nil {
		t.Fatalf("an old record has grants %v", u.ConsentedResources)
	}
	if b, _ := json.Marshal(&u); strings.Contains(string(b), "consentedResources") {
		t.Fatalf("an empty grant list is written: %s", b)
	}
	u.ConsentedResources = []string{"connectors"}
	b, _ := json.Marshal(&u)
	if !strings.Contains(string(b), `"consentedResources":["connectors"]`) {
		t.Fatalf("grants written as %s", b)
	}
	var back User
	if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.ConsentedResources, []string{"connectors"}) {
		t.Fatalf("round trip: %v %v", back.ConsentedResources, err)
	}
	if err := u.validate(); err != nil {
		t.Fatal(err)
	}
	u.ConsentedResources = []string{"https://apihub.azure.com/.default"}
	if u.validate() == nil {
		t.Fatal("a scope string was accepted as a grant name")
	}
}
