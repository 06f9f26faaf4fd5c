// A plain-Map adapter for node-oidc-provider with TTL expiry and no size bound.
//
// The provider's bundled MemoryAdapter is an LRU capped at 1000 entries: under a push load of
// thousands per second it evicts pushed requests long before their 60-s lifetime, which no real
// store may do (a store must hold rate x lifetime entries). This adapter keeps every entry until
// it expires, like the memory store of tower-par, so the comparison is fair.
//
// Layout: one Map per model (insertion-ordered, key = id), plus index Maps for session uid,
// device user code and grant membership. Expiry is exact on read; a sweeper drops expired
// entries from the front of each Map once a second so memory stays at rate x lifetime. Within a
// model the TTL is almost always constant (PushedAuthorizationRequest: 60 s), so insertion order
// is expiry order and the sweep stops at the first live entry: O(expired), not O(stored).

const models = new Map(); // model name -> Map(id -> { payload, expiresAt })
const uidIndex = new Map(); // session uid -> { id, expiresAt }
const userCodeIndex = new Map(); // device user code -> { id, expiresAt }
const grantIndex = new Map(); // grantId -> Set of `${model}\0${id}`

function table(model) {
  let t = models.get(model);
  if (t === undefined) {
    t = new Map();
    models.set(model, t);
  }
  return t;
}

function expiry(expiresIn) {
  return typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
}

function live(entry, now = Date.now()) {
  return entry !== undefined && entry.expiresAt > now ? entry : undefined;
}

function sweepMap(map, now, onExpired) {
  for (const [key, entry] of map) {
    if (entry.expiresAt > now) break;
    map.delete(key);
    onExpired?.(key, entry);
  }
}

const sweeper = setInterval(() => {
  const now = Date.now();
  for (const [model, t] of models) {
    sweepMap(t, now, (id, { payload }) => {
      if (payload.grantId) unlinkGrant(payload.grantId, model, id);
    });
  }
  sweepMap(uidIndex, now);
  sweepMap(userCodeIndex, now);
}, 1000);
// The sweeper must not keep the process alive on shutdown.
sweeper.unref();

function unlinkGrant(grantId, model, id) {
  const members = grantIndex.get(grantId);
  if (members === undefined) return;
  members.delete(`${model}\0${id}`);
  if (members.size === 0) grantIndex.delete(grantId);
}

/** node-oidc-provider adapter interface, see lib/adapters/memory_adapter.js in the package. */
export default class MapAdapter {
  constructor(model) {
    this.model = model;
    this.table = table(model);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiry(expiresIn);
    // Delete first so a re-upsert moves the entry to the end, keeping insertion order close to
    // expiry order for the sweeper.
    this.table.delete(id);
    this.table.set(id, { payload, expiresAt });
    if (this.model === 'Session' && payload.uid) {
      uidIndex.delete(payload.uid);
      uidIndex.set(payload.uid, { id, expiresAt });
    }
    if (payload.userCode) {
      userCodeIndex.delete(payload.userCode);
      userCodeIndex.set(payload.userCode, { id, expiresAt });
    }
    if (payload.grantId) {
      let members = grantIndex.get(payload.grantId);
      if (members === undefined) {
        members = new Set();
        grantIndex.set(payload.grantId, members);
      }
      members.add(`${this.model}\0${id}`);
    }
  }

  async find(id) {
    const entry = this.table.get(id);
    if (entry === undefined) return undefined;
    if (!live(entry)) {
      this.table.delete(id);
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    const ref = live(uidIndex.get(uid));
    return ref ? this.find(ref.id) : undefined;
  }

  async findByUserCode(userCode) {
    const ref = live(userCodeIndex.get(userCode));
    return ref ? this.find(ref.id) : undefined;
  }

  async consume(id) {
    const entry = live(this.table.get(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const entry = this.table.get(id);
    this.table.delete(id);
    if (entry?.payload.grantId) unlinkGrant(entry.payload.grantId, this.model, id);
  }

  async revokeByGrantId(grantId) {
    const members = grantIndex.get(grantId);
    if (members === undefined) return;
    grantIndex.delete(grantId);
    for (const member of members) {
      const sep = member.indexOf('\0');
      models.get(member.slice(0, sep))?.delete(member.slice(sep + 1));
    }
  }
}

/** Number of stored entries per model, for the peer's own diagnostics. */
export function sizes() {
  return Object.fromEntries([...models].map(([name, t]) => [name, t.size]));
}
