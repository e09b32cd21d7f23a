// Streams the AKS control plane's audit log (kube-audit-admin: every request but get/list) to the
// `peregrine.kube-audit` event hub, the source for Kubernetes audit rules. Deploy after eventhubs.bicep.
@description('Name of the existing AKS cluster in this resource group.')
param clusterName string

@description('Event Hubs namespace deployed by eventhubs.bicep.')
param namespaceName string

@description('kube-audit (every request, large) or kube-audit-admin (writes only, what most rules need).')
@allowed([
  'kube-audit'
  'kube-audit-admin'
])
param auditCategory string = 'kube-audit-admin'

resource cluster 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: clusterName
}

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' existing = {
  parent: namespace
  name: 'azure-diagnostics'
}

resource auditToEventHub 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'peregrine-kube-audit'
  scope: cluster
  properties: {
    eventHubAuthorizationRuleId: diagnosticsRule.id
    eventHubName: 'peregrine.kube-audit'
    logs: [
      {
        category: auditCategory
        enabled: true
      }
    ]
  }
}
