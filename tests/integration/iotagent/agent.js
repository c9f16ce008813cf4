// A FIWARE IoT Agent built on iotagent-node-lib (NGSI-LD, in-memory registry) that sends one
// measure to the ldt cloud, signing in with the library's own OAuth2 settings.
//
//   node agent.js DEVICE_ID TEMPERATURE
//
// Environment:
//   LDT_URL            the cloud (context broker and OAuth2 server), e.g. http://127.0.0.1:8080
//   LDT_CLIENT_ID, LDT_CLIENT_SECRET   the service account the agent signs in as
//   LDT_TRUST          the config group's trust: a refresh token, or (LDT_PERMANENT_TOKEN=true)
//                      a long-lived token the library sends as it is
//   LDT_TENANT         fiware-service, which the library sends as NGSILD-Tenant
//   LDT_CONTEXT        the @context of the payloads (contextBroker.jsonLdContext)
//   IOTA_NORTH_PORT    a free port for the agent's own provisioning API
//
// Provisions a config group holding the trust and a device through the agent's provisioning
// API (as an operator would), then calls iotAgentLib.update. Exits 0 once the broker accepted
// the update; otherwise prints the error and exits 1.
'use strict';

const { promisify } = require('util');
const iotAgentLib = require('iotagent-node-lib');

const [deviceId, temperature] = process.argv.slice(2);
const env = process.env;
const northPort = Number(env.IOTA_NORTH_PORT);
const tenant = env.LDT_TENANT;
const apikey = 'ldt-e2e';
const type = 'Thermometer';

const config = {
    logLevel: env.IOTA_LOG_LEVEL || 'ERROR',
    contextBroker: { url: env.LDT_URL, ngsiVersion: 'ld', jsonLdContext: env.LDT_CONTEXT },
    server: { host: '127.0.0.1', port: northPort },
    authentication: {
        enabled: true,
        type: 'oauth2',
        url: env.LDT_URL,
        tokenPath: '/auth/token',
        header: 'Authorization',
        clientId: env.LDT_CLIENT_ID,
        clientSecret: env.LDT_CLIENT_SECRET,
        permanentToken: env.LDT_PERMANENT_TOKEN === 'true'
    },
    deviceRegistry: { type: 'memory' },
    types: {},
    service: tenant,
    subservice: '/',
    providerUrl: `http://127.0.0.1:${northPort}`,
    dieOnUnexpectedError: true
};

async function provision(path, body) {
    const response = await fetch(`http://127.0.0.1:${northPort}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'fiware-service': tenant, 'fiware-servicepath': '/' },
        body: JSON.stringify(body)
    });
    if (response.status !== 201) {
        throw new Error(`provisioning ${path}: ${response.status} ${await response.text()}`);
    }
}

async function main() {
    await promisify(iotAgentLib.activate)(config);
    try {
        await provision('/iot/groups', {
            groups: [{ apikey, entity_type: type, resource: '/iot/json', trust: env.LDT_TRUST }]
        });
        await provision('/iot/devices', {
            devices: [
                {
                    device_id: deviceId,
                    entity_name: `urn:ngsi-ld:${type}:${deviceId}`,
                    entity_type: type,
                    apikey,
                    attributes: [{ object_id: 't', name: 'temperature', type: 'Number' }]
                }
            ]
        });
        const device = await promisify(iotAgentLib.getDevice)(deviceId, apikey, tenant, '/');
        const measure = [{ name: 'temperature', type: 'Number', value: Number(temperature) }];
        await promisify(iotAgentLib.update)(device.name, device.type, apikey, measure, device);
    } finally {
        await promisify(iotAgentLib.deactivate)();
    }
}

setTimeout(() => {
    console.error('agent.js: no answer within 30 s');
    process.exit(2);
}, 30000).unref();

main().then(
    () => {
        console.log(`agent.js: ${deviceId} temperature=${temperature} sent`);
        process.exit(0);
    },
    (error) => {
        const answer = error.details ? ` (broker answered ${error.code}: ${JSON.stringify(error.details)})` : '';
        console.error(`agent.js: ${error.name}: ${error.message}${answer}`);
        process.exit(1);
    }
);
