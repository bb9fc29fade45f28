// node-postgres (pg from npm) against lancesql serve: a count, a query with a parameter, common
// types, an error and the connection going on. Prints JSON lines; test_pgwire.py checks them.
const { Client } = require('pg');
(async () => {
  const client = new Client({ connectionString: process.argv[2] });
  await client.connect();
  const count = await client.query('SELECT count(*) AS n FROM products');
  console.log(JSON.stringify(count.rows));
  const rows = await client.query('SELECT id, name, price FROM products WHERE id < $1 ORDER BY id', [3]);
  console.log(JSON.stringify(rows.rows));
  const types = await client.query("SELECT 1::int AS i, 2.5::double AS f, true AS b, [1.5, 2.0] AS v, TIMESTAMP '2024-01-02 03:04:05' AS ts");
  console.log(JSON.stringify(types.rows));
  try { await client.query('SELECT * FROM nope'); } catch (e) { console.log('error ' + e.code); }
  const again = await client.query('SELECT 42 AS answer');
  console.log(JSON.stringify(again.rows));
  await client.end();
})().catch(e => { console.error(e); process.exit(1); });
