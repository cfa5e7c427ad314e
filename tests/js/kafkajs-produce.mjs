// Writes one user event per user id with kafkajs's default partitioner (the
// Java client's murmur2), keyed by the user id as the seed does, and prints
// where each went: [[userId, partition], ...] on stdout.
//   node kafkajs-produce.mjs BROKERS TOPIC USER_ID...
import { Kafka, logLevel } from 'kafkajs';

const [brokers, topic, ...users] = process.argv.slice(2);
if (!brokers || !topic || users.length === 0) {
  console.error('usage: kafkajs-produce.mjs BROKERS TOPIC USER_ID...');
  process.exit(2);
}
const kafka = new Kafka({
  clientId: 'arus-test-kafkajs',
  brokers: brokers.split(','),
  logLevel: logLevel.ERROR,
  retry: { retries: 5 },
});
const producer = kafka.producer({ allowAutoTopicCreation: false });
await producer.connect();
const placed = [];
try {
  for (const userId of users) {
    const value = JSON.stringify({
      eventId: crypto.randomUUID(),
      userId,
      eventType: 'login',
      timestamp: new Date().toISOString(),
    });
    const [meta] = await producer.send({ topic, acks: -1, messages: [{ key: userId, value }] });
    placed.push([userId, meta.partition]);
  }
} finally {
  await producer.disconnect();
}
process.stdout.write(JSON.stringify(placed) + '\n');
