// Parameters for main.bicep. azd exports the azd environment (.azure/<env>/.env) to the
// process, so every value below can be set with `azd env set NAME value`; outside azd,
// export the same variables before `az deployment sub create`.
// No secret is a parameter: secrets live in Key Vault (see bicep/scripts/bootstrap.sh).
using './main.bicep'

// Deployment
param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'flowstudio')
param location = readEnvironmentVariable('AZURE_LOCATION', 'australiaeast')
param resourceGroupName = readEnvironmentVariable('AZURE_RESOURCE_GROUP', '')
param deployApp = bool(readEnvironmentVariable('FLOWSTUDIO_DEPLOY_APP', 'false'))
param containerImage = readEnvironmentVariable('SERVICE_MCP_IMAGE_NAME', 'mcr.microsoft.com/k8se/quickstart:latest')
param operatorPrincipalId = readEnvironmentVariable('AZURE_PRINCIPAL_ID', '')
param operatorPrincipalType = readEnvironmentVariable('AZURE_PRINCIPAL_TYPE', 'User')

// Scale and rollout
param cpu = readEnvironmentVariable('FLOWSTUDIO_CPU', '0.25')
param memory = readEnvironmentVariable('FLOWSTUDIO_MEMORY', '0.5Gi')
param maxReplicas = int(readEnvironmentVariable('FLOWSTUDIO_MAX_REPLICAS', '10'))
param httpConcurrency = int(readEnvironmentVariable('FLOWSTUDIO_HTTP_CONCURRENCY', '50'))
param traffic = json(readEnvironmentVariable('FLOWSTUDIO_TRAFFIC', '[{"latestRevision": true, "weight": 100}]'))
param revisionSuffix = readEnvironmentVariable('FLOWSTUDIO_REVISION_SUFFIX', '')
param syncSchedule = readEnvironmentVariable('FLOWSTUDIO_SYNC_SCHEDULE', '*/30 * * * *')
param alertSchedule = readEnvironmentVariable('FLOWSTUDIO_ALERT_SCHEDULE', '*/5 * * * *')

// Application settings
param publicUrl = readEnvironmentVariable('FLOWSTUDIO_PUBLIC_URL', '')
param allowedOrigins = readEnvironmentVariable('FLOWSTUDIO_ALLOWED_ORIGINS', '')
param drainTimeout = readEnvironmentVariable('FLOWSTUDIO_DRAIN_TIMEOUT', '20s')
param otlpMetricsEndpoint = readEnvironmentVariable('FLOWSTUDIO_OTLP_METRICS_ENDPOINT', '')
param entraClientId = readEnvironmentVariable('ENTRA_CLIENT_ID', '')
// Key Vault secret names; 'none' turns the setting off (no client secret: federated
// credential; no Stripe webhook secret: billing webhooks off).
var entraSecretName = readEnvironmentVariable('ENTRA_CLIENT_SECRET_NAME', 'entra-client-secret')
var stripeSecretName = readEnvironmentVariable('STRIPE_WEBHOOK_SECRET_NAME', 'stripe-webhook-secret')
param entraClientSecretName = entraSecretName == 'none' ? '' : entraSecretName
param entraAuthority = readEnvironmentVariable('ENTRA_AUTHORITY', 'https://login.microsoftonline.com')
param entraTenant = readEnvironmentVariable('ENTRA_TENANT', 'organizations')
param flowApiUrl = readEnvironmentVariable('FLOW_API_URL', 'https://api.flow.microsoft.com')
param powerAppsApiUrl = readEnvironmentVariable('POWERAPPS_API_URL', 'https://api.powerapps.com')
param bapApiUrl = readEnvironmentVariable('BAP_API_URL', 'https://api.bap.microsoft.com')
param stripeWebhookSecretName = stripeSecretName == 'none' ? '' : stripeSecretName
// Alert email (empty SMTP_HOST: alerts on the dashboard only); the password is a Key
// Vault secret named by SMTP_PASSWORD_SECRET_NAME.
param smtpHost = readEnvironmentVariable('SMTP_HOST', '')
param smtpPort = readEnvironmentVariable('SMTP_PORT', '587')
param smtpUsername = readEnvironmentVariable('SMTP_USERNAME', '')
param smtpFrom = readEnvironmentVariable('SMTP_FROM', '')
param smtpPasswordSecretName = readEnvironmentVariable('SMTP_PASSWORD_SECRET_NAME', '')
param logLevel = readEnvironmentVariable('LOG_LEVEL', 'info')
param quotaFree = readEnvironmentVariable('QUOTA_FREE', '200/20')
param quotaPro = readEnvironmentVariable('QUOTA_PRO', '5000/120')
param quotaTeam = readEnvironmentVariable('QUOTA_TEAM', '50000/600')
