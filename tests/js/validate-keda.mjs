// Checks KEDA resources against KEDA's own schemas (@kubernetes-models/keda),
// plus the documented field names (the schemas let unknown fields through,
// which the cluster would then prune in silence).
//   node validate-keda.mjs < docs.json     (a JSON array of resources)
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';

const KINDS = { ScaledObject, TriggerAuthentication };
const FIELDS = {
  ScaledObject: ['scaleTargetRef', 'pollingInterval', 'cooldownPeriod', 'initialCooldownPeriod',
    'idleReplicaCount', 'minReplicaCount', 'maxReplicaCount', 'fallback', 'advanced', 'triggers'],
  TriggerAuthentication: ['secretTargetRef', 'env', 'podIdentity', 'hashiCorpVault', 'azureKeyVault',
    'awsSecretManager', 'gcpSecretManager', 'configMapTargetRef', 'boundServiceAccountToken'],
};
const TRIGGER_FIELDS = ['type', 'name', 'metadata', 'metricType', 'useCachedMetrics', 'authenticationRef'];

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const docs = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const problems = [];
let checked = 0;
for (const doc of docs) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const Model = KINDS[doc.kind];
  if (doc.apiVersion !== 'keda.sh/v1alpha1' || !Model) {
    problems.push(`${name}: not a KEDA kind this checker knows (${doc.apiVersion})`);
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (error) {
    problems.push(`${name}: ${error.message}`);
  }
  for (const key of Object.keys(doc.spec ?? {})) {
    if (!FIELDS[doc.kind].includes(key)) problems.push(`${name}: unknown field spec.${key}`);
  }
  for (const [i, trigger] of (doc.spec?.triggers ?? []).entries()) {
    for (const key of Object.keys(trigger)) {
      if (!TRIGGER_FIELDS.includes(key)) problems.push(`${name}: unknown field spec.triggers[${i}].${key}`);
    }
  }
  checked += 1;
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`${checked} KEDA resources valid`);
