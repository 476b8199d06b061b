// node-postgres (`pg`, with pg-copy-streams) through the lakelet proxy, as an application
// would use it.
//
// Usage: node node_pg_client.js URL CA_FILE|- LOOPS
//   CA_FILE: the daemon's certificate to verify TLS against (verify-full); "-" for no TLS.
//
// Checks, each failing with a message that names what differs from a Postgres server:
// client.processID is pg_backend_pid(); LISTEN/NOTIFY carries the sender's real pid (self-
// detection); cancel ends pg_sleep with 57014; pg_terminate_backend(processID) ends the session
// with 57P01; a pg.Pool drops its terminated idle client and hands out a live one; COPY in
// (text) and out (binary) agree; LOOPS rounds of SELECT then COPY ... TO STDOUT (FORMAT binary)
// each finish within 20 s (else exit 3, naming the round). Prints "ok NAME ..." per check.
'use strict'
const fs = require('fs')
const assert = require('assert')
const { pipeline } = require('stream/promises')
const { Readable, Writable } = require('stream')
const pg = require('pg')
const { from: copyFrom, to: copyTo } = require('pg-copy-streams')

const [url, caFile, loopsArg] = process.argv.slice(2)
const loops = Number(loopsArg)
const u = new URL(url)
const config = {
  host: u.hostname,
  port: Number(u.port),
  user: decodeURIComponent(u.username),
  password: decodeURIComponent(u.password),
  database: u.pathname.slice(1),
  options: u.searchParams.get('options'),
  ssl: caFile === '-' ? false : { ca: fs.readFileSync(caFile), servername: 'localhost' },
}
const ok = (name, detail = '') => console.log(`ok ${name} ${detail}`.trimEnd())
const connect = async () => {
  const c = new pg.Client(config)
  await c.connect()
  return c
}
const one = async (c, sql, args) => (await c.query(sql, args)).rows[0]
const expectError = async (promise, code, what) => {
  try {
    await promise
  } catch (e) {
    assert.strictEqual(e.code, code, `${what}: ${e.code} ${e.message}`)
    return
  }
  assert.fail(`${what}: no error`)
}

async function main () {
  const c = await connect()
  const { pid } = await one(c, 'select pg_backend_pid() as pid')
  assert.strictEqual(c.processID, pid, `processID ${c.processID} != pg_backend_pid() ${pid}`)
  const { ssl } = await one(c, "select $1::bool as ssl", [!!c.connection.stream.encrypted])
  assert.strictEqual(ssl, caFile !== '-', 'TLS in use as asked')
  ok('pid', `${pid} ssl=${ssl}`)

  // LISTEN/NOTIFY with self-detection.
  const other = await connect()
  const seen = {}
  const two = new Promise(resolve => c.on('notification', m => {
    seen[m.payload] = m.processId
    if (Object.keys(seen).length === 2) resolve()
  }))
  await c.query('listen ch')
  await c.query("notify ch, 'self'")
  await other.query("notify ch, 'other'")
  await Promise.race([two, new Promise((resolve, reject) => setTimeout(() => reject(new Error('notifications did not arrive')), 10000).unref())])
  assert.strictEqual(seen.self, c.processID, `own notification from ${seen.self}`)
  assert.strictEqual(seen.other, other.processID, JSON.stringify(seen))
  ok('notify', JSON.stringify(seen))

  // Cancel: node-postgres sends the CancelRequest on a new, plain connection.
  const victim = await connect()
  const sleep = new pg.Query('select pg_sleep(30)')
  const sleeping = new Promise((resolve, reject) => sleep.on('error', reject).on('end', resolve))
  victim.query(sleep)
  setTimeout(() => new pg.Client({ ...config, ssl: false }).cancel(victim, sleep), 500)
  await expectError(sleeping, '57014', 'cancel')
  assert.strictEqual((await one(victim, 'select 1 as x')).x, 1)
  ok('cancel')

  // Terminate by the pid the client knows.
  const vpid = victim.processID
  const ended = new Promise(resolve => victim.on('error', resolve))
  assert.strictEqual((await one(other, 'select pg_terminate_backend($1, 10000) as t', [vpid])).t, true)
  const err = await ended
  assert.strictEqual(err.code, '57P01', `terminated session: ${err.code} ${err.message}`)
  const { n } = await one(other, 'select count(*)::int as n from pg_stat_activity where pid = $1', [vpid])
  assert.strictEqual(n, 0)
  ok('terminate', String(vpid))

  // A pool drops its idle client that was terminated and hands out a live one.
  const pool = new pg.Pool({ ...config, max: 1 })
  const poolErrors = []
  pool.on('error', e => poolErrors.push(e.code))
  const p1 = (await pool.query('select pg_backend_pid() as p')).rows[0].p
  await other.query('select pg_terminate_backend($1, 10000)', [p1])
  for (let i = 0; i < 100 && poolErrors.length === 0; i++) await new Promise(resolve => setTimeout(resolve, 50))
  assert.deepStrictEqual(poolErrors, ['57P01'], 'the pool saw its client terminated')
  const p2 = (await pool.query('select pg_backend_pid() as p')).rows[0].p
  assert.notStrictEqual(p2, p1)
  await pool.end()
  ok('pool', `${p1}->${p2}`)

  // COPY in (text) and out (binary).
  await c.query('drop table if exists copy_t')
  await c.query('create table copy_t(id int primary key, v text)')
  const rows = 20000
  const lines = function * () {
    for (let i = 0; i < rows; i++) yield `${i}\trow ${i} ${'z'.repeat(i % 300)}\n`
  }
  await pipeline(Readable.from(lines()), c.query(copyFrom('copy copy_t (id, v) from stdin')))
  assert.strictEqual((await one(c, 'select count(*)::int as n from copy_t')).n, rows)
  const copyOut = async (client, sql) => {
    let size = 0
    const chunks = []
    await pipeline(client.query(copyTo(sql)), new Writable({
      write (chunk, _enc, done) { size += chunk.length; chunks.push(chunk); done() },
    }))
    return Buffer.concat(chunks, size)
  }
  const bin = await copyOut(c, 'copy (select id, v from copy_t order by id) to stdout (format binary)')
  const { bytes } = await one(c, "select sum(2 + 4 + 4 + 4 + octet_length(v))::int + 19 + 2 as bytes from copy_t")
  assert.strictEqual(bin.length, bytes, 'binary COPY out has every row')
  assert.strictEqual(bin.subarray(0, 11).toString('latin1'), 'PGCOPY\n\xff\r\n\0')
  ok('copy', String(rows))

  // The COPY-after-SELECT loop, every round under a watchdog.
  const loop = await connect()
  for (let i = 0; i < loops; i++) {
    let timer
    const stall = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error('stall')), 20000) })
    try {
      await Promise.race([stall, (async () => {
        await loop.query('begin')
        const { n } = await one(loop, 'select count(*)::int as n from copy_t where id % 7 = $1', [i % 7])
        assert.ok(n > 0)
        const out = await copyOut(loop, `copy (select id, v from copy_t where id < ${500 + i * 37 % 4000}) to stdout (format binary)`)
        assert.ok(out.length > 0)
        await loop.query('commit')
      })()])
    } catch (e) {
      if (e.message === 'stall') {
        console.log(`STALL in round ${i} of ${loops} (ssl=${caFile !== '-'})`)
        process.exit(3)
      }
      throw e
    } finally {
      clearTimeout(timer)
    }
  }
  ok('loop', `${loops} rounds`)
  await c.query('drop table copy_t')
  await Promise.all([c.end(), other.end(), loop.end()])
}

main().catch(e => {
  console.error(e)
  process.exit(1)
})
