package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/flowstudio/mcp/tools/powerautomate/entrasim"
	"github.com/google/uuid"
)

// Seeded identities. Every user of a tenant sees its environments and the
// flows shared with the team; private flows are visible to their owner only.
const (
	ContosoTenantID  = "4c19ecc8-d2b9-44ea-8f16-376422920943"
	FabrikamTenantID = "ab8ef648-2b65-4df1-8eae-d2ce3007b739"

	ContosoDefaultEnv     = "Default-" + ContosoTenantID
	ContosoProductionEnv  = "b3adefd1-9dc6-4d0e-bd7b-64ed96a9d023"
	ContosoSandboxEnv     = "80988900-2043-4148-928c-1beb3e0cb41d"
	FabrikamDefaultEnv    = "Default-" + FabrikamTenantID
	FabrikamProductionEnv = "6ca890e3-95f3-46bd-b701-b4188a0ea4fa"
	FabrikamSandboxEnv    = "ef894127-ebf3-484c-94aa-bd1a43b84c3f"

	// Contoso flows (default environment unless noted).

	// FlowInvoiceApproval fails in its latest runs: Try > Process_invoice >
	// Calculate_unit_price divides by a literal zero (InvalidTemplate).
	// Replacing "@div(variables('Total'), 0)" fixes new runs.
	FlowInvoiceApproval = "ad07dd5f-5d17-476a-ac1f-2c878c551f59"
	// FlowDailySalesReport has a Foreach with repetitions and a ~300 KB Get_items output.
	FlowDailySalesReport = "a86245ba-6ab8-4ab8-aca7-225bc62f0862"
	// FlowHourlyInventorySync has 120 runs (paging); its Http action carries a
	// simulateFailure marker (502 BadGateway) that fails new runs.
	FlowHourlyInventorySync = "b0d9f147-62dc-499a-8535-c22e1677243e"
	// FlowOrderIntake has an HTTP request trigger ("manual", kind Http).
	FlowOrderIntake = "c7fdddde-47cf-48cf-84d6-9f69fe912cd3"
	// FlowExportJobPoller has an Until loop; its newest run is Running.
	FlowExportJobPoller = "e1c8151e-9c2e-4ce3-a614-05acbcdc52db"
	// FlowLeaveRequest waits on an approval: newest run Running, one Cancelled;
	// a manual run stays Running for two hours (cancel tests).
	FlowLeaveRequest = "312e9a51-8a0e-4874-84a5-db115b0e5499"
	// FlowDataverseWebhook is Stopped; starting it is refused (ApiPolicyDataFlowViolation).
	FlowDataverseWebhook = "1a0165e6-df91-4bf1-afbc-ea3a914802df"
	// FlowTwitterPost (production environment) is Stopped; starting it is refused (DlpViolation).
	FlowTwitterPost = "3728bdc7-afee-4e29-9f08-738362f417e4"
	// FlowBobPrivate belongs to bob@contoso.com alone: others get 403.
	FlowBobPrivate = "7cb8b0fb-8b2c-460a-99e5-de927c71dc8b"
	// FlowCreateProjectTask uses shared_contosotasks.
	FlowCreateProjectTask = "33fb5733-d50b-4469-baa8-5b9e7c931312"
	// FlowVacationTracker (alice's, shared with the team) lives outside Dataverse: it has
	// no workflowEntityId until migrateFlows moves it into a solution.
	FlowVacationTracker = "5f3c9a4e-2d1b-4c8a-9e7f-6b0a1c2d3e4f"

	// FabrikamInvoiceApproval is Fabrikam's copy of FlowInvoiceApproval.
	FabrikamInvoiceApproval = "032095df-83ae-4aaf-bf8b-9851099ddfa6"

	// ContosoTasksConnection is Contoso's connected shared_contosotasks
	// connection in the default environment.
	ContosoTasksConnection = "4c5d3e2f1a0b49c8b7d6e5f4a3b2c1d0"
)

// simNamespace derives stable ids (user object ids, filler flow names).
var simNamespace = uuid.MustParse("8930d2d5-641e-48f8-bee5-0fc74fa2aaea")

// fixedFlowNames give the key flows stable, documented names.
var fixedFlowNames = map[string]string{
	ContosoTenantID + "/invoice":   FlowInvoiceApproval,
	ContosoTenantID + "/sales":     FlowDailySalesReport,
	ContosoTenantID + "/inventory": FlowHourlyInventorySync,
	ContosoTenantID + "/order":     FlowOrderIntake,
	ContosoTenantID + "/poller":    FlowExportJobPoller,
	ContosoTenantID + "/leave":     FlowLeaveRequest,
	ContosoTenantID + "/dlp":       FlowDataverseWebhook,
	ContosoTenantID + "/dlp2":      FlowTwitterPost,
	ContosoTenantID + "/private":   FlowBobPrivate,
	ContosoTenantID + "/tasks":     FlowCreateProjectTask,
	ContosoTenantID + "/legacy":    FlowVacationTracker,
	FabrikamTenantID + "/invoice":  FabrikamInvoiceApproval,
}

// UserFor maps an email to a user: contoso.com → Contoso, fabrikam.com →
// Fabrikam, anything else → Contoso; the object id is a UUID derived from
// the lower-cased email, so the same email is always the same user.
func (s *Sim) UserFor(email string) (tenantID, objectID string) {
	email = strings.ToLower(strings.TrimSpace(email))
	tenantID = ContosoTenantID
	if strings.HasSuffix(email, "@fabrikam.com") {
		tenantID = FabrikamTenantID
	}
	objectID = uuid.NewSHA1(simNamespace, []byte(email)).String()
	s.mu.Lock()
	s.users[objectID] = email
	s.mu.Unlock()
	return tenantID, objectID
}

func (s *Sim) seed(now time.Time) {
	for _, t := range []struct{ id, name, domain, location, prod, sandbox, privateOwner string }{
		{ContosoTenantID, "Contoso", "contoso.com", "europe", ContosoProductionEnv, ContosoSandboxEnv, "bob"},
		{FabrikamTenantID, "Fabrikam", "fabrikam.com", "unitedstates", FabrikamProductionEnv, FabrikamSandboxEnv, "gary"},
	} {
		_, maker := s.UserFor("alice@" + t.domain)
		_, owner := s.UserFor(t.privateOwner + "@" + t.domain)
		_, admin := s.UserFor("admin@" + t.domain)
		ten := &tenant{id: t.id, name: t.name, domain: t.domain, admins: map[string]bool{admin: true}}
		s.tenants[t.id] = ten
		for i, e := range []struct{ name, display, sku string }{
			{"Default-" + t.id, t.name + " (default)", "Default"},
			{t.prod, t.name + " Production", "Production"},
			{t.sandbox, t.name + " Sandbox", "Sandbox"},
		} {
			env := &environment{name: e.name, displayName: e.display, sku: e.sku, location: t.location,
				isDefault: i == 0, created: now.AddDate(-2, i, 0), tenant: ten}
			ten.envs = append(ten.envs, env)
			s.envs[strings.ToLower(env.name)] = env
			if e.sku != "Sandbox" {
				s.seedDataverse(env)
			}
			s.seedConnections(env, maker, now)
			s.seedApps(env, maker, owner, now)
			for _, tpl := range flowTemplates {
				if tpl.env == i {
					s.seedFlow(env, tpl, maker, owner, now)
				}
			}
		}
	}
}

func (s *Sim) seedConnections(env *environment, maker string, now time.Time) {
	for i, c := range []struct{ connector, status string }{
		{"shared_office365", "Connected"}, {"shared_sharepointonline", "Connected"}, {"shared_teams", "Connected"},
		{"shared_approvals", "Connected"}, {"shared_contosotasks", "Connected"}, {"shared_contosotasks", "Error"},
		{"shared_commondataserviceforapps", "Connected"}, {"shared_twitter", "Expired"},
	} {
		id := uuid.NewSHA1(simNamespace, []byte(fmt.Sprintf("%s/%s/%d", env.name, c.connector, i)))
		name := strings.ReplaceAll(c.connector, "_", "-") + "-" + id.String()
		if c.connector == "shared_contosotasks" {
			name = strings.ReplaceAll(id.String(), "-", "")
			if env.name == ContosoDefaultEnv && c.status == "Connected" {
				name = ContosoTasksConnection
			}
		}
		conn := &connection{name: name, connector: c.connector, displayName: "alice@" + env.tenant.domain, env: env, creator: maker,
			created: now.AddDate(0, -6, -i), modified: now.AddDate(0, -1, -i), status: c.status}
		switch c.status {
		case "Error":
			conn.displayName = "Contoso Tasks (broken)"
			conn.statusError = &errorBody{Code: "Unauthenticated", Message: "This connection is not authenticated."}
		case "Expired":
			conn.status = "Error"
			conn.expires = now.AddDate(0, 0, -3)
			conn.statusError = &errorBody{Code: "Unauthorized", Message: "The refresh token of this connection has expired. Sign in again to fix it."}
		}
		env.connections = append(env.connections, conn)
	}
}

// connectionFor returns the environment's first healthy connection to a connector.
func (e *environment) connectionFor(connector string) *connection {
	for _, c := range e.connections {
		if c.connector == connector && c.status == "Connected" {
			return c
		}
	}
	return nil
}

func (s *Sim) seedFlow(env *environment, tpl flowTemplate, maker, owner string, now time.Time) {
	name := fixedFlowNames[env.tenant.id+"/"+tpl.key]
	if name == "" {
		name = uuid.NewSHA1(simNamespace, []byte(env.name+"/"+tpl.key)).String()
	}
	org := strings.NewReplacer("contoso.", strings.ToLower(env.tenant.name)+".", "Contoso", env.tenant.name)
	def := workflowDefinition(org.Replace(tpl.triggers), org.Replace(tpl.actions))
	f := &flow{
		name: name, displayName: tpl.display, state: "Started", env: env, definition: def,
		created: now.AddDate(0, -3, 0).Add(-time.Duration(len(env.flows)) * time.Hour), creator: maker,
		workflowID: strings.ReplaceAll(name, "-", ""), entityID: newEntityID(env, name),
	}
	if tpl.outsideDataverse {
		f.entityID = ""
	}
	f.modified = f.created.AddDate(0, 1, 0)
	f.connRefs = connectionReferences(env, def)
	if tpl.private {
		f.creator, f.private = owner, true
	}
	if tpl.dlp != nil {
		f.state, f.dlp = "Stopped", tpl.dlp
	}
	env.flows = append(env.flows, f)
	s.workflows[f.workflowID] = f
	for i := range tpl.runs {
		start := now.Add(-time.Duration(i+1)*tpl.every + time.Duration(i%7)*time.Minute)
		if i == 0 && tpl.newestRunning > 0 {
			start = now.Add(-tpl.newestRunning)
		}
		r := s.newRun(f, start, time.Second, tpl.failed != nil && tpl.failed(i), tpl.payload, nil)
		if i == tpl.cancelled && tpl.cancelled > 0 {
			r.cancelledAt = start.Add(10 * time.Minute)
		}
	}
}

// newRun simulates a run of f's current definition and files it.
func (s *Sim) newRun(f *flow, start time.Time, pace time.Duration, failures bool, payload string, keywords []string) *run {
	s.seq++
	name := fmt.Sprintf("%020d%09dCU%02d", uint64(8_600_000_000_000_000_000)-uint64(start.UnixNano()/100), 999_999_999-s.seq%1_000_000_000, s.seq%100)
	var d wfDefinition
	json.Unmarshal(f.definition, &d)
	r := &run{name: name, flow: f, start: start, keywords: keywords, trackingID: name[:20] + "1" + name[21:]}
	for tname, t := range d.Triggers {
		r.trigger = tname
		switch strings.ToLower(t.Type) {
		case "request":
			if payload == "" {
				payload = "{}"
			}
			r.triggerOutputs = []byte(`{"headers":{"Content-Type":"application/json","User-Agent":"PowerAutomate"},"body":` + payload + `}`)
		case "openapiconnection", "openapiconnectionnotification", "openapiconnectionwebhook":
			r.triggerInputs = []byte(`{"host":{"connectionName":"trigger"},"method":"get"}`)
			r.triggerOutputs = []byte(`{"headers":{"Content-Type":"application/json"},"body":{"ID":7,"Title":"New item"}}`)
		}
	}
	r.result = simulate(f.definition, start.Add(pace/5), pace, failures, s.seq)
	f.addRun(r)
	return r
}

// workflowDefinition wraps triggers and actions into a Logic Apps definition.
func workflowDefinition(triggers, actions string) json.RawMessage {
	raw := `{"$schema":"https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#",` +
		`"contentVersion":"1.0.0.0","parameters":{"$authentication":{"defaultValue":{},"type":"SecureObject"},` +
		`"$connections":{"defaultValue":{},"type":"Object"}},"triggers":` + triggers + `,"actions":` + actions + `,"outputs":{}}`
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(raw)); err != nil {
		panic("sim: seed definition: " + err.Error())
	}
	return buf.Bytes()
}

// connectionReferences lists, for every connector a definition uses, the
// environment's connection to it.
func connectionReferences(env *environment, def json.RawMessage) json.RawMessage {
	refs := map[string]any{}
	for _, c := range connectorCatalog {
		if !bytes.Contains(def, []byte(`"`+c.name+`"`)) {
			continue
		}
		ref := map[string]string{"id": "/providers/Microsoft.PowerApps/apis/" + c.name, "displayName": c.display, "source": "Embedded", "tier": c.tier}
		if conn := env.connectionFor(c.name); conn != nil {
			ref["connectionName"] = conn.name
		}
		refs[c.name] = ref
	}
	out, _ := json.Marshal(refs)
	return out
}

// SignInPeople are the simulated people the sign-in page lists; any other
// email works too (see UserFor).
var SignInPeople = []entrasim.Person{
	{Email: "alice@contoso.com", Name: "Alice (maker)", Tenant: "Contoso"},
	{Email: "bob@contoso.com", Name: "Bob (owns a private flow)", Tenant: "Contoso"},
	{Email: "admin@contoso.com", Name: "Contoso admin", Tenant: "Contoso"},
	{Email: "alice@fabrikam.com", Name: "Alice (maker)", Tenant: "Fabrikam"},
	{Email: "gary@fabrikam.com", Name: "Gary (owns a private flow)", Tenant: "Fabrikam"},
	{Email: "admin@fabrikam.com", Name: "Fabrikam admin", Tenant: "Fabrikam"},
}

// Entra is the simulator's Entra ID stand-in (at <base>/entra): register apps,
// issue or revoke refresh tokens, sign a managed identity's token.
func (s *Sim) Entra() *entrasim.Entra { return s.entra }

// directory is the Sim as the stand-in's entrasim.Directory.
type directory struct{ s *Sim }

func (d directory) Tenant(segment string) (id, name string, ok bool) {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	for id, t := range d.s.tenants {
		if segment == id || segment == t.domain || segment == strings.TrimSuffix(t.domain, ".com")+".onmicrosoft.com" {
			return id, t.name, true
		}
	}
	return "", "", false
}

func (d directory) UserFor(email string) (tenantID, objectID string) { return d.s.UserFor(email) }

func (d directory) Email(objectID string) string {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return d.s.users[objectID]
}

func (d directory) People() []entrasim.Person { return SignInPeople }
