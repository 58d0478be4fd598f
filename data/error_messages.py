"""Texts of the errors that stop ``leadscore data import``, in ``en`` and ``zh-CN``.

These are an unreadable file, a missing or ambiguous header, an invalid mapping file or
option, and a data folder that cannot be updated. Each is raised with a
``data.import_messages.Message`` (see ``import_error``), and ``register_import_messages``
registers this catalog with the importer's. The English templates are the texts these
errors have always had.
"""

from __future__ import annotations

# Paths, values and details from libraries (an OS error, a CSV or TOML parser message) are
# filled in unchanged, so they stay English in the zh-CN texts.
ERRORS: dict[str, dict[str, str]] = {
    # Reading the file
    "import.error.not_found": {"en": "input file {path} not found", "zh-CN": "找不到输入文件 {path}"},
    "import.error.folder": {
        "en": "{path} is a folder; pass the path of the exported file itself",
        "zh-CN": "{path} 是文件夹；请传入导出文件本身的路径",
    },
    "import.error.unreadable": {"en": "cannot read {path}: {detail}", "zh-CN": "无法读取 {path}：{detail}"},
    "import.error.xls": {
        "en": "{path}: the old Excel .xls format is not supported; save it as .xlsx or CSV",
        "zh-CN": "{path}：不支持旧版 Excel 的 .xls 格式；请另存为 .xlsx 或 CSV",
    },
    "import.error.empty_file": {
        "en": "{path}: the file is empty; expected a header row and data rows",
        "zh-CN": "{path}：文件是空的；文件应包含一行表头和若干数据行",
    },
    "import.error.csv_quoting": {
        "en": "{path}: invalid CSV in the row that starts on line {start_line} (error near line "
        '{error_line}: {detail}). A quote (") that opens a field is probably not closed, or text follows '
        'a closing quote; a quote inside a quoted field is written as "". Fix the quotes on that line or '
        "export the file again",
        "zh-CN": "{path}：从第 {start_line} 行开始的这一行不是有效的 CSV（错误在第 {error_line} 行附近："
        '{detail}）。可能是字段开头的引号（"）没有闭合，或闭合的引号后面还有文字；带引号的字段中，引号'
        '本身要写成 ""。请修正该行的引号，或重新导出文件',
    },
    "import.error.xlsx_unreadable": {
        "en": "{path}: not a readable XLSX workbook: {detail}",
        "zh-CN": "{path}：不是可以读取的 XLSX 工作簿：{detail}",
    },
    "import.error.no_sheet": {
        "en": "{path}: no worksheet named {sheet}; sheets: {sheets}",
        "zh-CN": "{path}：没有名为 {sheet} 的工作表；工作簿中的工作表为 {sheets}",
    },
    "import.error.parquet_unreadable": {
        "en": "{path}: not a readable Parquet file: {detail}",
        "zh-CN": "{path}：不是可以读取的 Parquet 文件：{detail}",
    },
    "import.error.parquet_binary": {
        "en": "{path}: column {column} has binary values that are not UTF-8 text ({detail}); write the "
        "column as a string column",
        "zh-CN": "{path}：列 {column} 中有不是 UTF-8 文本的二进制值（{detail}）；请把该列写成字符串列",
    },
    # Encodings (data.encoding)
    "import.error.undecodable": {
        "en": "{path}: cannot decode byte {byte} at byte offset {offset} (line {line}); the file is not "
        "UTF-8, UTF-8 with BOM or GB18030/GBK. Save it again as 'CSV UTF-8' or export it as XLSX",
        "zh-CN": "{path}：无法解码字节偏移 {offset} 处（第 {line} 行）的字节 {byte}；文件的编码不是 "
        "UTF-8、带 BOM 的 UTF-8 或 GB18030/GBK。请重新另存为“CSV UTF-8”，或导出为 XLSX",
    },
    "import.error.utf16": {
        "en": "{path}: the file starts with a UTF-16 byte order mark (byte offset 0), as Excel's 'Unicode "
        "Text' export does; UTF-16 is not supported. Save it again as 'CSV UTF-8' or export it as XLSX",
        "zh-CN": "{path}：文件以 UTF-16 字节顺序标记开头（字节偏移 0），Excel 导出的“Unicode 文本”就是"
        "这样；不支持 UTF-16。请重新另存为“CSV UTF-8”，或导出为 XLSX",
    },
    "import.error.damaged_utf8": {
        "en": "{path}: the file is UTF-8, but byte {byte} at byte offset {offset} (line {line}) is not valid "
        "UTF-8. Delete or retype the damaged character on that line, or export the file again as "
        "'CSV UTF-8'",
        "zh-CN": "{path}：文件是 UTF-8 编码，但字节偏移 {offset} 处（第 {line} 行）的字节 {byte} 不是有效的 "
        "UTF-8。请删除或重新输入该行中损坏的字符，或重新导出为“CSV UTF-8”",
    },
    "import.error.nul_byte": {
        "en": "{path}: NUL byte at byte offset {offset}; the file looks like UTF-16 or binary data, not "
        "UTF-8 or GB18030 text. Save it again as 'CSV UTF-8' or export it as XLSX",
        "zh-CN": "{path}：字节偏移 {offset} 处有 NUL 字节；文件像是 UTF-16 或二进制数据，而不是 UTF-8 或 "
        "GB18030 文本。请重新另存为“CSV UTF-8”，或导出为 XLSX",
    },
    # Headers (data.headers, data.validate)
    "import.error.missing_columns": {
        "en": "table {table} lacks required column(s): {columns}",
        "zh-CN": "表 {table} 缺少必需的列：{columns}",
    },
    "import.error.missing_column": {
        "en": "{name} (accepted headers: {accepted})",
        "zh-CN": "{name}（可接受的表头：{accepted}）",
    },
    "import.error.headers_found": {
        "en": "{missing}. Headers in the file: {found}",
        "zh-CN": "{missing}。文件中的表头为 {found}",
    },
    "import.error.sheet_hint": {
        "en": "{error}. These headers come from the first worksheet {sheet}; the workbook also has "
        "{others}: choose the worksheet with --sheet",
        "zh-CN": "{error}。这些表头来自第一个工作表 {sheet}；工作簿中还有 {others}：请用 --sheet 选择工作表",
    },
    "import.error.two_headers": {
        "en": "table {table}: headers {first} and {second} both map to {target}; rename one of them in the "
        "mapping file ({mapping_key}) or remove it from the file",
        "zh-CN": "表 {table}：表头 {first} 和 {second} 都对应列 {target}；请在映射文件的 {mapping_key} "
        "中重命名其中一个，或从文件中删除它",
    },
    "import.error.other_unit": {
        "en": "table {table}: header {header} matches {target}, but its note ({note}) names a unit other "
        "than yuan; convert the column to yuan, or rename the header in the mapping file ({mapping_key}) "
        "once the values are in yuan",
        "zh-CN": "表 {table}：表头 {header} 对应列 {target}，但表头注释（{note}）中的单位不是元；请把该列"
        "换算成元，或在换算成元之后，在映射文件的 {mapping_key} 中重命名该表头",
    },
    "import.error.rename_target": {
        "en": "table {table}: header {header} is renamed to {target}, which is neither a column of the "
        "table ({columns}) nor a declared attribute",
        "zh-CN": "表 {table}：表头 {header} 被重命名为 {target}，但它既不是该表的列（{columns}），"
        "也不是已声明的属性",
    },
    "import.error.alias_conflict": {
        "en": "table {table}: header {header} is an alias of both {first} and {second}",
        "zh-CN": "表 {table}：表头 {header} 同时是 {first} 和 {second} 的别名",
    },
    # Options and the data folder (data.importer)
    "import.error.option": {"en": "{option}: {problem}", "zh-CN": "{option}：{problem}"},
    "import.error.date_format": {
        "en": "date format {format} has no % directive; write it like '%Y/%m/%d %H:%M'",
        "zh-CN": "日期格式 {format} 中没有 % 格式符；请写成 '%Y/%m/%d %H:%M' 这样的形式",
    },
    "import.error.unknown_timezone": {
        "en": "unknown time zone {zone}; use an IANA name such as Asia/Shanghai",
        "zh-CN": "时区 {zone} 无法识别；请使用 IANA 时区名，如 Asia/Shanghai",
    },
    "import.error.existing_table": {
        "en": "{path} exists but cannot be read as a table ({detail}); move it away or import into another "
        "--out folder",
        "zh-CN": "{path} 已存在，但无法作为数据表读取（{detail}）；请把它移走，或用 --out 导入另一个目录",
    },
    "import.error.existing_rejects": {
        "en": "cannot read the existing rejects file {path} ({detail}); move it away so that the import "
        "can write a new one",
        "zh-CN": "无法读取已有的被拒绝行文件 {path}（{detail}）；请把它移走，以便导入写出新文件",
    },
    "import.error.attribute_conflict": {
        "en": "custom attribute {name} is declared as {type} (post_contact={post_contact}) but the data "
        "folder already has it as {folder_type} (post_contact={folder_post_contact}); use one declaration",
        "zh-CN": "自定义属性 {name} 声明为 {type}（post_contact={post_contact}），但数据目录中已有的声明为 "
        "{folder_type}（post_contact={folder_post_contact}）；请统一为同一种声明",
    },
    # The mapping file (data.mapping)
    "import.error.mapping_unreadable": {
        "en": "cannot read mapping file {path}: {detail}",
        "zh-CN": "无法读取映射文件 {path}：{detail}",
    },
    "import.error.mapping_not_utf8": {
        "en": "mapping file {path} is not UTF-8 (byte offset {offset}); save it as UTF-8",
        "zh-CN": "映射文件 {path} 不是 UTF-8 编码（字节偏移 {offset}）；请另存为 UTF-8",
    },
    "import.error.mapping_suffix": {
        "en": "mapping file {path} must end in .toml, .yaml or .yml",
        "zh-CN": "映射文件 {path} 的扩展名必须是 .toml、.yaml 或 .yml",
    },
    "import.error.mapping_syntax": {
        "en": "mapping file {path} is not valid {syntax}: {detail}",
        "zh-CN": "映射文件 {path} 不是有效的 {syntax}：{detail}",
    },
    "import.error.mapping_top_level": {
        "en": "{source}: expected a table of keys at the top level, found {found}",
        "zh-CN": "{source}：顶层应是键值表，读到的是 {found}",
    },
    "import.error.mapping_invalid": {
        "en": "{source} is invalid:\n{problems}",
        "zh-CN": "{source} 无效：\n{problems}",
    },
    "import.error.mapping_problem": {"en": "  - {location}: {detail}", "zh-CN": "  - {location}：{detail}"},
    "import.error.mapping_top": {"en": "(top level)", "zh-CN": "（顶层）"},
    "import.error.mapping_unknown_key": {
        "en": "unknown key {name}{hint}",
        "zh-CN": "无法识别的键 {name}{hint}",
    },
    "import.error.mapping_close_key": {"en": "; did you mean {name}?", "zh-CN": "；是否应为 {name}？"},
    "import.error.mapping_quote": {
        "en": "{detail} (quote it: YAML reads an unquoted 0123 as the number 83 and yes/no as true/false)",
        "zh-CN": "{detail}（请给该值加引号：YAML 会把不带引号的 0123 读作数字 83，"
        "把 yes/no 读作 true/false）",
    },
    "import.error.unknown_table": {
        "en": "unknown table {table} under tables; expected one of {tables}",
        "zh-CN": "tables 下的表 {table} 无法识别；可接受的表为 {tables}",
    },
    "import.error.attribute_name": {
        "en": "attribute name {name} must be lowercase letters, digits and _",
        "zh-CN": "属性名 {name} 只能由小写字母、数字和 _ 组成",
    },
    "import.error.attributes_leads_only": {
        "en": "tables.{table}.attributes: only leads take custom attributes",
        "zh-CN": "tables.{table}.attributes：只有 leads 表可以声明自定义属性",
    },
    "import.error.attribute_is_column": {
        "en": "tables.{table}.attributes: {name} is already a canonical column",
        "zh-CN": "tables.{table}.attributes：{name} 已经是标准列",
    },
    "import.error.attribute_twice": {
        "en": "tables.{table}.attributes: an attribute name is declared twice",
        "zh-CN": "tables.{table}.attributes：有一个属性名声明了两次",
    },
    "import.error.column_target": {
        "en": "tables.{table}.columns: {header} maps to {target}, which is neither a column of {table} "
        "({columns}) nor a declared attribute",
        "zh-CN": "tables.{table}.columns：{header} 映射到 {target}，但它既不是 {table} 表的列（{columns}），"
        "也不是已声明的属性",
    },
    "import.error.value_map_column": {
        "en": "tables.{table}.values: {column} is not a category column; value maps apply to {columns}",
        "zh-CN": "tables.{table}.values：{column} 不是类别列；值映射只适用于 {columns}",
    },
    "import.error.value_map_target": {
        "en": "tables.{table}.values.{column}: {source} maps to {target}, which is not one of {allowed}",
        "zh-CN": "tables.{table}.values.{column}：{source} 映射到 {target}，"
        "但它不是可接受的值之一（{allowed}）",
    },
}
