package sim

import (
	"fmt"
	"time"
)

// flowTemplate is a seeded flow: its definition parts (the word "contoso"
// in host names and mail addresses becomes the tenant's name), where it lives and its run history.
type flowTemplate struct {
	key, display      string
	env               int // 0 default, 1 production, 2 sandbox
	triggers, actions string
	private           bool
	dlp               *errorBody
	runs              int
	every             time.Duration
	failed            func(i int) bool // i = 0 is the newest run
	newestRunning     time.Duration    // the newest run started this long ago and is still going
	cancelled         int              // index of a cancelled run (0: none)
	payload           string           // trigger body of manual runs
	outsideDataverse  bool             // stored in the Flow service only (no workflowEntityId)
}

const (
	spAPI       = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_sharepointonline","connectionName":"shared_sharepointonline"`
	o365API     = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_office365","connectionName":"shared_office365"`
	teamsAPI    = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_teams","connectionName":"shared_teams"`
	tasksAPI    = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_contosotasks","connectionName":"shared_contosotasks"`
	approvalAPI = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_approvals","connectionName":"shared_approvals"`
	dvAPI       = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps","connectionName":"shared_commondataserviceforapps"`
	twitterAPI  = `"apiId":"/providers/Microsoft.PowerApps/apis/shared_twitter","connectionName":"shared_twitter"`
	auth        = `"authentication":"@parameters('$authentication')"`

	buttonTrigger     = `{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object","properties":{},"required":[]}}}}`
	dailyTrigger      = `{"Recurrence":{"type":"Recurrence","recurrence":{"frequency":"Day","interval":1,"schedule":{"hours":["7"]},"timeZone":"W. Europe Standard Time"}}}`
	hourlyTrigger     = `{"Recurrence":{"type":"Recurrence","recurrence":{"frequency":"Hour","interval":1}}}`
	weeklyTrigger     = `{"Recurrence":{"type":"Recurrence","recurrence":{"frequency":"Week","interval":1,"schedule":{"weekDays":["Sunday"]}}}}`
	sendEmailTemplate = `{"type":"OpenApiConnection","runAfter":%s,"inputs":{"host":{` + o365API + `,"operationId":"SendEmailV2"},"parameters":{"emailMessage/To":"%s","emailMessage/Subject":"%s","emailMessage/Body":"<p>%s</p>"},` + auth + `}}`
)

func sendEmail(runAfter, to, subject, body string) string {
	return fmt.Sprintf(sendEmailTemplate, runAfter, to, subject, body)
}

var (
	dataFlowViolation = &errorBody{Code: "ApiPolicyDataFlowViolation",
		Message:      "Admin data policy 'COE upgrade DLP' restricts the use of /providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps with Http.",
		ExtendedData: []byte(`{"violation":{"policyId":"/providers/Microsoft.BusinessAppPlatform/scopes/service/apiPolicies/5d0c2a5e-3f7b-4c1e-9a8d-2b6f4e1c7a90","policyDisplayName":"COE upgrade DLP","type":"BusinessAndNonBusinessConnector","parameters":["/providers/Microsoft.PowerApps/apis/shared_commondataserviceforapps","Http"]},"additionalInfo":{"adminContactEmailAddress":"admin@contoso.com"}}`)}
	dlpViolation = &errorBody{Code: "DlpViolation", Message: "Flow cannot be activated due to admin API policies: the connector 'Twitter' is blocked by policy 'Block social media'."}
)

var flowTemplates = []flowTemplate{
	{
		key: "invoice", display: "Invoice approval", runs: 14, every: 24 * time.Hour,
		failed:  func(i int) bool { return i < 5 },
		payload: `{"invoiceId":"INV-1042","total":1250.5}`,
		triggers: `{"manual":{"type":"Request","kind":"Button","inputs":{"schema":{"type":"object","properties":{
			"invoiceId":{"title":"Invoice ID","type":"string"},"total":{"title":"Total","type":"number"}},"required":["invoiceId"]}}}}`,
		actions: `{
			"Initialize_total":{"type":"InitializeVariable","runAfter":{},"inputs":{"variables":[{"name":"Total","type":"float","value":"@triggerBody()?['total']"}]}},
			"Try":{"type":"Scope","runAfter":{"Initialize_total":["Succeeded"]},"actions":{
				"Get_invoice":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + spAPI + `,"operationId":"GetItem"},
					"parameters":{"dataset":"https://contoso.sharepoint.com/sites/finance","table":"Invoices","id":"@triggerBody()?['invoiceId']"},` + auth + `}},
				"Process_invoice":{"type":"Scope","runAfter":{"Get_invoice":["Succeeded"]},"actions":{
					"Compose_line_count":{"type":"Compose","runAfter":{},"inputs":"@length(body('Get_invoice')?['Lines'])"},
					"Calculate_unit_price":{"type":"Compose","runAfter":{"Compose_line_count":["Succeeded"]},"inputs":"@div(variables('Total'), 0)"},
					"Update_invoice":{"type":"OpenApiConnection","runAfter":{"Calculate_unit_price":["Succeeded"]},"inputs":{"host":{` + spAPI + `,"operationId":"PatchItem"},
						"parameters":{"dataset":"https://contoso.sharepoint.com/sites/finance","table":"Invoices","id":"@triggerBody()?['invoiceId']","item/UnitPrice":"@outputs('Calculate_unit_price')"},` + auth + `}}}}}},
			"Send_confirmation":` + sendEmail(`{"Try":["Succeeded"]}`, "finance@contoso.com", "Invoice @{triggerBody()?['invoiceId']} processed", "Unit price: @{outputs('Calculate_unit_price')}") + `}`,
	},
	{
		key: "sales", display: "Daily sales report", runs: 21, every: 24 * time.Hour, triggers: dailyTrigger,
		actions: `{
			"Initialize_rows":{"type":"InitializeVariable","runAfter":{},"inputs":{"variables":[{"name":"Rows","type":"array","value":[]}]}},
			"Get_items":{"type":"OpenApiConnection","runAfter":{"Initialize_rows":["Succeeded"]},"inputs":{"host":{` + spAPI + `,"operationId":"GetItems"},
				"parameters":{"dataset":"https://contoso.sharepoint.com/sites/sales","table":"Orders","$top":5000},` + auth + `}},
			"Apply_to_each":{"type":"Foreach","foreach":"@outputs('Get_items')?['body/value']","runAfter":{"Get_items":["Succeeded"]},"actions":{
				"Compose_row":{"type":"Compose","runAfter":{},"inputs":{"region":"@items('Apply_to_each')?['Region']","amount":"@items('Apply_to_each')?['Amount']"}},
				"Append_to_rows":{"type":"AppendToArrayVariable","runAfter":{"Compose_row":["Succeeded"]},"inputs":{"name":"Rows","value":"@outputs('Compose_row')"}}}},
			"Create_CSV_table":{"type":"Table","runAfter":{"Apply_to_each":["Succeeded"]},"inputs":{"from":"@variables('Rows')","format":"CSV"}},
			"Send_report":` + sendEmail(`{"Create_CSV_table":["Succeeded"]}`, "sales@contoso.com", "Daily sales report", "@{body('Create_CSV_table')}") + `}`,
	},
	{
		key: "inventory", display: "Hourly inventory sync", runs: 120, every: time.Hour, triggers: hourlyTrigger,
		failed: func(i int) bool { return i%10 == 4 },
		actions: `{
			"Get_stock_levels":{"type":"Http","runAfter":{},"inputs":{"method":"GET","uri":"https://inventory.contoso.example/api/stock",
				"simulateFailure":{"status":502,"code":"BadGateway","message":"The remote server returned an error: (502) Bad Gateway."}}},
			"Parse_stock":{"type":"ParseJson","runAfter":{"Get_stock_levels":["Succeeded"]},"inputs":{"content":"@body('Get_stock_levels')","schema":{"type":"object"}}},
			"Condition_low_stock":{"type":"If","expression":{"less":["@body('Parse_stock')?['items']",5]},"runAfter":{"Parse_stock":["Succeeded"]},
				"actions":{"Post_low_stock_alert":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + teamsAPI + `,"operationId":"PostMessageToConversation"},
					"parameters":{"poster":"Flow bot","location":"Channel","body/recipient/groupId":"team-ops","body/messageBody":"Low stock"},` + auth + `}}},
				"else":{"actions":{"Compose_stock_ok":{"type":"Compose","runAfter":{},"inputs":"Stock OK"}}}}}`,
	},
	{
		key: "order", display: "Order intake", runs: 10, every: 6 * time.Hour, payload: `{"orderId":"SO-2001","amount":420}`,
		triggers: `{"manual":{"type":"Request","kind":"Http","inputs":{"method":"POST","schema":{"type":"object","properties":{
			"orderId":{"type":"string"},"amount":{"type":"number"}},"required":["orderId"]}}}}`,
		actions: `{
			"Compose_order":{"type":"Compose","runAfter":{},"inputs":{"id":"@triggerBody()?['orderId']","amount":"@triggerBody()?['amount']"}},
			"Create_follow_up_task":{"type":"OpenApiConnection","runAfter":{"Compose_order":["Succeeded"]},"inputs":{"host":{` + tasksAPI + `,"operationId":"CreateTask"},
				"parameters":{"projectId":"p-001","body/title":"Follow up order @{triggerBody()?['orderId']}"},` + auth + `}},
			"Response":{"type":"Response","kind":"Http","runAfter":{"Create_follow_up_task":["Succeeded"]},"inputs":{"statusCode":200,"body":{"received":true}}}}`,
	},
	{
		key: "poller", display: "Export job poller", runs: 8, every: 24 * time.Hour, newestRunning: 3 * time.Minute, triggers: dailyTrigger,
		actions: `{
			"Start_export":{"type":"Http","runAfter":{},"inputs":{"method":"POST","uri":"https://erp.contoso.example/api/exports","body":{"format":"csv"}}},
			"Until_export_done":{"type":"Until","expression":"@equals(body('Check_export')?['status'], 'done')","limit":{"count":60,"timeout":"PT1H"},
				"runAfter":{"Start_export":["Succeeded"]},"actions":{
				"Wait_5_minutes":{"type":"Wait","runAfter":{},"inputs":{"interval":{"count":5,"unit":"Minute"}}},
				"Check_export":{"type":"Http","runAfter":{"Wait_5_minutes":["Succeeded"]},"inputs":{"method":"GET","uri":"https://erp.contoso.example/api/exports/latest"}}}},
			"Compose_result":{"type":"Compose","runAfter":{"Until_export_done":["Succeeded"]},"inputs":"@body('Check_export')"}}`,
	},
	{
		key: "leave", display: "Leave request approval", runs: 6, every: 48 * time.Hour, newestRunning: 30 * time.Minute, cancelled: 2,
		payload:  `{}`,
		triggers: buttonTrigger,
		actions: `{
			"Start_and_wait_for_an_approval":{"type":"OpenApiConnectionWebhook","runAfter":{},"inputs":{"host":{` + approvalAPI + `,"operationId":"StartAndWaitForAnApproval"},
				"parameters":{"approvalType":"Basic","WebhookApprovalCreationInput/title":"Leave request","WebhookApprovalCreationInput/assignedTo":"manager@contoso.com"},` + auth + `}},
			"Condition_approved":{"type":"If","expression":{"equals":["@body('Start_and_wait_for_an_approval')?['outcome']","Approve"]},
				"runAfter":{"Start_and_wait_for_an_approval":["Succeeded"]},
				"actions":{"Send_approved":` + sendEmail(`{}`, "@{triggerOutputs()?['headers/x-ms-user-email']}", "Leave approved", "Enjoy!") + `},
				"else":{"actions":{"Send_rejected":` + sendEmail(`{}`, "@{triggerOutputs()?['headers/x-ms-user-email']}", "Leave rejected", "Sorry.") + `}}}}`,
	},
	{
		key: "dlp", display: "Sync Dataverse to webhook", runs: 3, every: 96 * time.Hour, dlp: dataFlowViolation,
		triggers: `{"When_a_row_is_added":{"type":"OpenApiConnectionWebhook","inputs":{"host":{` + dvAPI + `,"operationId":"SubscribeWebhookTrigger"},
			"parameters":{"subscriptionRequest/message":1,"subscriptionRequest/entityname":"account","subscriptionRequest/scope":4},` + auth + `}}}`,
		actions: `{"Post_to_webhook":{"type":"Http","runAfter":{},"inputs":{"method":"POST","uri":"https://hooks.example.net/accounts","body":"@triggerOutputs()?['body']"}}}`,
	},
	{
		key: "dlp2", display: "Post new products to Twitter", env: 1, dlp: dlpViolation, triggers: dailyTrigger,
		actions: `{"Post_a_tweet":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + twitterAPI + `,"operationId":"Tweet"},"parameters":{"tweetText":"New products are in!"},` + auth + `}}}`,
	},
	{
		key: "private", display: "Bob's expense tracker", private: true, runs: 3, every: 72 * time.Hour, triggers: buttonTrigger,
		actions: `{"Compose_expense":{"type":"Compose","runAfter":{},"inputs":{"amount":42,"category":"Travel"}}}`,
	},
	{
		key: "private2", display: "Draft: personal reminders", env: 1, private: true, triggers: dailyTrigger,
		actions: `{"Send_reminder":` + sendEmail(`{}`, "bob@contoso.com", "Reminder", "Timesheet!") + `}`,
	},
	{
		key: "tasks", display: "Create project task", runs: 4, every: 72 * time.Hour, triggers: buttonTrigger,
		actions: `{"Create_task":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + tasksAPI + `,"operationId":"CreateTask"},
			"parameters":{"projectId":"p-001","body/title":"Prepare kickoff","body/dueDate":"@addDays(utcNow(), 7)"},` + auth + `}}}`,
	},
	{
		key: "legacy", display: "Vacation tracker (legacy)", runs: 2, every: 7 * 24 * time.Hour, triggers: buttonTrigger, outsideDataverse: true,
		actions: `{"Send_request":` + sendEmail(`{}`, "hr@contoso.com", "Vacation request", "A new vacation request is waiting.") + `}`,
	},
	{
		key: "triage", display: "New email triage", runs: 15, every: 8 * time.Hour,
		triggers: `{"When_a_new_email_arrives_(V3)":{"type":"OpenApiConnectionNotification","inputs":{"host":{` + o365API + `,"operationId":"OnNewEmailV3"},
			"parameters":{"folderPath":"Inbox","importance":"Any"},` + auth + `}}}`,
		actions: `{
			"Condition_urgent":{"type":"If","expression":{"contains":["@triggerOutputs()?['body/subject']","URGENT"]},"runAfter":{},
				"actions":{"Post_to_Teams":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + teamsAPI + `,"operationId":"PostMessageToConversation"},
					"parameters":{"poster":"Flow bot","location":"Channel","body/recipient/groupId":"team-support","body/messageBody":"@triggerOutputs()?['body/subject']"},` + auth + `}},
					"Forward_email":{"type":"OpenApiConnection","runAfter":{"Post_to_Teams":["Succeeded"]},"inputs":{"host":{` + o365API + `,"operationId":"SendEmail"},
					"parameters":{"emailMessage/To":"oncall@contoso.com","emailMessage/Subject":"FW: urgent"},` + auth + `}}},
				"else":{"actions":{}}}}`,
	},
	{
		key: "onboarding", display: "Customer onboarding", env: 1, runs: 10, every: 36 * time.Hour,
		triggers: `{"When_an_item_is_created":{"type":"OpenApiConnection","recurrence":{"frequency":"Minute","interval":5},"inputs":{"host":{` + spAPI + `,"operationId":"GetOnNewItems"},
			"parameters":{"dataset":"https://contoso.sharepoint.com/sites/crm","table":"Customers"},` + auth + `}}}`,
		actions: `{
			"Onboarding_steps":{"type":"Scope","runAfter":{},"actions":{
				"Create_kickoff_task":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + tasksAPI + `,"operationId":"CreateTask"},
					"parameters":{"projectId":"p-002","body/title":"Kickoff with @{triggerOutputs()?['body/Title']}"},` + auth + `}},
				"Send_welcome":` + sendEmail(`{"Create_kickoff_task":["Succeeded"]}`, "@{triggerOutputs()?['body/Email']}", "Welcome to Contoso", "We are glad to have you.") + `}},
			"Notify_failure":` + sendEmail(`{"Onboarding_steps":["Failed","TimedOut"]}`, "crm@contoso.com", "Onboarding failed", "Check the run.") + `}`,
	},
	{
		key: "backup", display: "Weekly backup", env: 1, runs: 4, every: 7 * 24 * time.Hour, triggers: weeklyTrigger,
		actions: `{
			"List_folders":{"type":"Compose","runAfter":{},"inputs":["Contracts","Invoices","Reports"]},
			"For_each_folder":{"type":"Foreach","foreach":"@outputs('List_folders')","runAfter":{"List_folders":["Succeeded"]},
				"runtimeConfiguration":{"concurrency":{"repetitions":3}},"actions":{
				"Copy_folder":{"type":"OpenApiConnection","runAfter":{},"inputs":{"host":{` + spAPI + `,"operationId":"CopyFolderAsync"},
					"parameters":{"dataset":"https://contoso.sharepoint.com/sites/archive","parameters/sourcePath":"@items('For_each_folder')"},` + auth + `}}}}}`,
	},
}

// fillerFlows pad each environment with simple flows so that lists page.
func init() {
	names := [][]string{
		{"Notify on file upload", "Sync contacts to CRM", "Monthly KPI digest", "Welcome new Teams members", "Archive old list items",
			"Timesheet reminders", "Budget threshold alert", "Survey responses to Excel", "Ticket escalation", "Data cleanup",
			"Expense report reminder", "Meeting notes to OneNote", "Vendor onboarding checklist", "Asset check-out log"},
		{"Invoice export to ERP", "Nightly price update", "Contract renewal reminder", "Service desk daily summary", "Lead assignment"},
		{"Test: HTTP echo", "Test: approval sandbox", "Prototype: Copilot summary", "Prototype: document tagging"},
	}
	for env, list := range names {
		for i, display := range list {
			tpl := flowTemplate{key: fmt.Sprintf("filler-%d-%d", env, i), display: display, env: env, triggers: dailyTrigger,
				runs: i % 6, every: time.Duration(24*(1+i%3)) * time.Hour,
				actions: `{"Compose_summary":{"type":"Compose","runAfter":{},"inputs":"` + display + `"},` +
					`"Send_summary":` + sendEmail(`{"Compose_summary":["Succeeded"]}`, "team@contoso.com", display, "@{outputs('Compose_summary')}") + `}`}
			if i%4 == 1 {
				tpl.triggers = buttonTrigger
			}
			flowTemplates = append(flowTemplates, tpl)
		}
	}
}
