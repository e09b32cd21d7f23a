// Where alerts land in Microsoft Sentinel: a Log Analytics workspace with Sentinel on it, a custom table
// PeregrineAlerts_CL, and the Logs Ingestion API path (data collection endpoint + rule) the `sentinel` output posts to.
param workspaceName string = 'peregrine-sentinel'
param location string = resourceGroup().location

@description('Object id of the service principal the outputs pod authenticates as (client credentials).')
param outputsPrincipalId string

@minValue(30)
param retentionInDays int = 90

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource sentinel 'Microsoft.SecurityInsights/onboardingStates@2024-03-01' = {
  scope: workspace
  name: 'default'
  properties: {}
}

var columns = [
  { name: 'TimeGenerated', type: 'datetime' }
  { name: 'AlertId', type: 'string' }
  { name: 'Rule', type: 'string' }
  { name: 'Priority', type: 'string' }
  { name: 'Source', type: 'string' }
  { name: 'Hostname', type: 'string' }
  { name: 'Output', type: 'string' }
  { name: 'Tags', type: 'dynamic' }
  { name: 'OutputFields', type: 'dynamic' }
]

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: 'PeregrineAlerts_CL'
  properties: {
    schema: {
      name: 'PeregrineAlerts_CL'
      columns: columns
    }
    retentionInDays: retentionInDays
  }
}

resource endpoint 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {
  name: '${workspaceName}-dce'
  location: location
  properties: {
    networkAcls: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: '${workspaceName}-peregrine-alerts'
  location: location
  dependsOn: [
    table
  ]
  properties: {
    dataCollectionEndpointId: endpoint.id
    streamDeclarations: {
      'Custom-PeregrineAlerts': {
        columns: columns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Custom-PeregrineAlerts'
        ]
        destinations: [
          'workspace'
        ]
        transformKql: 'source'
        outputStream: 'Custom-PeregrineAlerts_CL'
      }
    ]
  }
}

// Monitoring Metrics Publisher on the rule: the only right the outputs principal needs.
resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: rule
  name: guid(rule.id, outputsPrincipalId, 'Monitoring Metrics Publisher')
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '3913510d-42f4-4e42-8a64-420c390055eb')
    principalId: outputsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output workspaceId string = workspace.id
output ingestionEndpoint string = endpoint.properties.logsIngestion.endpoint
output ruleImmutableId string = rule.properties.immutableId
output streamName string = 'Custom-PeregrineAlerts'
