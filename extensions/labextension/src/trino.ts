/**
 * Trino's SQL dialect for CodeMirror's SQL language: its keywords, types and common
 * functions; double quotes delimit names, single quotes strings.
 */
import { SQLDialect } from '@codemirror/lang-sql';

const KEYWORDS =
  'all alter analyze and any array as asc at between by call cascade case cast catalogs ' +
  'column columns comment commit create cross cube current current_catalog current_date ' +
  'current_path current_role current_schema current_time current_timestamp current_user ' +
  'deallocate delete desc describe distinct drop else end escape except execute exists ' +
  'explain extract false fetch filter first following for format from full functions grant ' +
  'group grouping having if ignore immediate in inner insert intersect interval into is ' +
  'join last lateral left like limit local localtime localtimestamp map match_recognize ' +
  'merge natural next no not null nulls of offset on only or order ordinality outer over ' +
  'partition partitions prepare range recursive rename replace reset revoke right role ' +
  'rollback rollup row rows schema schemas select session set sets show some start stats ' +
  'system table tables tablesample then ties to true try_cast uescape union unnest update ' +
  'use using values view when where window with within zone';

const TYPES =
  'bigint boolean char date decimal double hyperloglog integer int ipaddress json real ' +
  'smallint time timestamp tinyint uuid varbinary varchar';

const BUILTIN =
  'abs approx_distinct approx_percentile arbitrary array_agg avg bool_and bool_or ' +
  'cardinality ceil coalesce concat contains count count_if date_add date_diff ' +
  'date_format date_parse date_trunc day element_at floor format_datetime from_unixtime ' +
  'greatest histogram if json_extract json_extract_scalar json_format json_parse least ' +
  'length lower lpad ltrim map_agg max max_by min min_by month now nullif regexp_extract ' +
  'regexp_like regexp_replace replace round rpad rtrim split split_part stddev strpos ' +
  'substr substring sum to_unixtime transform trim try upper variance week year';

export const TrinoSQL = SQLDialect.define({
  keywords: KEYWORDS,
  types: TYPES,
  builtin: BUILTIN,
  doubleQuotedStrings: false,
  identifierQuotes: '"',
  operatorChars: '*+-%<>!=&|/~^',
  specialVar: ''
});
