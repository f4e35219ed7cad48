"""Text content of synthetic Taiwanese government documents (公文): headers, sections, amounts, tables, seals.

Everything is drawn from `random.Random` passed in, so one seed gives one document. Text is Traditional Chinese;
`to_simplified` converts a finished document for the Simplified option (OpenCC t2s), so both scripts share one
generator.

Not for: drawing (lib/synth/page.py) or choosing fonts (lib/render.py).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

CITIES = ["臺北市", "新北市", "桃園市", "臺中市", "臺南市", "高雄市", "基隆市", "新竹縣", "苗栗縣", "彰化縣", "南投縣",
          "雲林縣", "嘉義市", "屏東縣", "宜蘭縣", "花蓮縣", "臺東縣", "澎湖縣", "金門縣", "連江縣"]
CITY_UNITS = ["政府", "政府教育局", "政府衛生局", "政府財政局", "政府環境保護局", "政府社會局", "政府交通局",
              "政府工務局", "政府文化局", "政府民政局", "政府地政局", "政府勞動局", "政府消防局", "議會"]
CENTRAL = ["行政院", "內政部", "外交部", "國防部", "財政部", "教育部", "法務部", "經濟部", "交通部", "勞動部",
           "衛生福利部", "環境部", "文化部", "數位發展部", "農業部", "國家發展委員會", "國家科學及技術委員會",
           "金融監督管理委員會", "財政部國庫署", "教育部國民及學前教育署", "經濟部產業發展署", "內政部移民署",
           "衛生福利部疾病管制署", "審計部", "考選部", "銓敘部", "行政院主計總處", "行政院人事行政總處"]
PREFIX = ["府授", "北市", "新北府", "桃府", "中市", "南市", "高市", "台內", "台財", "臺教", "法", "經", "交",
          "勞動", "衛部", "環部", "文", "數位", "農", "發", "科部", "金管", "院臺", "主", "總處"]
TOPIC = ["教", "社", "衛", "工", "交", "財", "環", "文", "秘", "人", "主", "綜", "法", "資", "地", "民", "建", "經"]
SUFFIX = ["字", "一字", "二字", "三字", "中字", "綜字", "秘字", "會字", "管字", "規字"]
SPEED = ["最速件", "速件", "普通件"]
SECRECY = ["普通", "密", "機密", "普通（本件於公布時解密）", "密（本件於民國115年12月31日解密）", "普通（限閱）"]
RECEIVERS = ["各級學校", "本府各一級機關", "如正副本行文單位", "各直轄市及縣（市）政府", "各區公所",
             "社團法人臺灣醫院協會", "財團法人中華民國消費者文教基金會", "臺灣電力股份有限公司", "各公私立大專校院"]
SUBJECTS = [
    "檢送「{year}年度{program}實施計畫」乙份，請查照並轉知所屬。",
    "有關{program}經費補助申請案，請於{date}前函送本{unit_short}，請查照。",
    "函轉{agency}修正「{law}」部分條文，自{date}生效，請查照。",
    "為辦理{program}，請惠予協助指派人員參加，請查照。",
    "貴單位申請{program}補助款計{amount_formal}（{amount_num}元），准予核撥，請查照。",
    "訂於{date}召開「{program}」說明會，請派員出席，請查照。",
    "有關{program}執行情形，請依限填報並回傳，請查照。",
    "檢陳本{unit_short}{year}年度{program}成果報告，敬請鑒核。",
]
PROGRAMS = ["數位學習推動", "淨零排放轉型", "長期照顧服務", "校園食品安全稽查", "交通安全宣導", "防災教育深耕",
            "社區營造補助", "公共運輸發展", "資通安全稽核", "青年就業促進", "老舊建築耐震補強", "ESG永續揭露",
            "5G智慧城市", "COVID-19疫苗接種", "AI人才培育", "循環經濟示範", "雙語國家政策", "智慧財產權保護"]
LAWS = ["行政程序法", "政府採購法", "公務人員任用法", "個人資料保護法", "資通安全管理法", "地方制度法",
        "預算法", "會計法", "災害防救法", "勞動基準法", "建築法", "空氣污染防制法", "政府資訊公開法"]
REASONS = [
    "依據{agency}{year}年{month}月{day}日{docno}函辦理。",
    "依「{law}」第{art}條規定辦理。",
    "本案補助經費計{amount_formal}（{amount_num}元），請依核定項目專款專用。",
    "請於{date}前將申請表及相關證明文件（PDF檔）以電子郵件寄至{email}。",
    "聯絡人：{person}，電話：({area}){tel}分機{ext}，傳真：({area}){tel2}。",
    "相關資訊請至本{unit_short}網站（{url}）「最新消息」專區下載。",
    "本計畫執行期間自{date}起至{date2}止，逾期不予受理。",
    "旨揭計畫經費核定如附件，請依{law}相關規定辦理核銷。",
    "各單位應指派專人負責，並於每月{day}日前填報執行進度，計{count}項指標。",
    "檢附{program}重點工作項目及KPI指標表各乙份。",
    "為提升行政效率，請以公文電子交換系統（e-Gov）辦理相關作業。",
    "本案所需經費由{year}年度相關預算項下支應，預估約{amount_num}元。",
    "會議時間：{date}上午{hour}時{minute}分；地點：本{unit_short}{floor}樓第{room}會議室。",
]
MEASURES = [
    "請各單位確實督導所屬依限辦理，並列入年度考核。",
    "未依規定辦理者，依「{law}」第{art}條規定處理。",
    "有關經費請撙節使用，結餘款應依規定繳回。",
    "請於收文後{count}日內以書面回復辦理情形。",
    "本案如有疑義，請洽本{unit_short}{person}（電話：({area}){tel}）。",
]
TERMS = ["淨零排放", "碳足跡", "循環經濟", "ESG", "資通安全", "個人資料", "雲端服務", "AI", "SDGs", "API",
         "開放資料", "數位身分證", "電子公文", "ISO 27001", "GPS", "RFID", "ERP", "碳權交易", "再生能源"]
SURNAMES = list("陳林黃張李王吳劉蔡楊許鄭謝洪郭邱曾廖賴徐周葉蘇莊呂江何蕭羅高潘簡朱鍾游彭詹胡施沈余盧梁趙顏柯翁魏孫戴范方宋鄧杜傅侯曹薛丁卓阮馬董溫唐藍蔣石古紀姚連馮歐程湯黃田康姜白汪鄒尤巫鐘黎涂龔嚴韓袁金童陸夏柳凃邵")
GIVEN = list("志明建宏俊傑家豪冠宇淑芬美玲雅婷怡君佩珊承恩宗翰欣怡文雄國華秀英麗華淑惠宜蓁庭瑋柏翰子涵品妤昱廷彥廷慧君婉婷信宏振宇")
TITLES = ["市長", "縣長", "局長", "處長", "部長", "署長", "主任委員", "院長", "主任", "校長", "代理局長", "副市長"]
TABLE_HEADERS = [
    (["項次", "項目", "單位", "數量", "單價（元）", "金額（元）", "備註"], "經費"),
    (["編號", "機關名稱", "承辦人", "聯絡電話", "辦理日期", "備註"], "聯絡資訊"),
    (["序號", "工作項目", "預定進度", "實際進度", "執行率", "說明"], "進度"),
    (["項次", "課程名稱", "時數", "講師", "日期", "地點"], "課程"),
]
ITEMS = ["人事費", "業務費", "設備費", "差旅費", "印刷費", "場地費", "講座鐘點費", "膳費", "材料費", "雜支",
         "電腦設備", "網路服務", "顧問諮詢", "教育訓練", "宣導活動", "系統維護", "資料建置", "保險費"]
UNITS = ["式", "人次", "場", "份", "台", "套", "月", "小時", "件", "批"]
CATEGORIES = ["經常門", "資本門", "第一期", "第二期", "北區", "中區", "南區", "東區", "上半年", "下半年"]

_DIGITS = "零壹貳參肆伍陸柒捌玖"
_SMALL_UNITS = ["", "拾", "佰", "仟"]
_BIG_UNITS = ["", "萬", "億", "兆"]


def formal_numeral(n: int) -> str:
    """An integer in formal (banker's) numerals as written on checks and 公文: 12000 -> 壹萬貳仟."""
    if n < 0:
        raise ValueError("formal_numeral needs a non-negative integer")
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out = ""
    need_zero = False
    for gi in range(len(groups) - 1, -1, -1):
        g = groups[gi]
        if g == 0:
            need_zero = bool(out)
            continue
        part = ""
        zero = need_zero or (out and g < 1000)
        for pos in range(3, -1, -1):
            d = (g // 10 ** pos) % 10
            if d == 0:
                if part:
                    zero = True
                continue
            if zero and (part or out):
                part += "零"
            zero = False
            part += _DIGITS[d] + _SMALL_UNITS[pos]
        out += part + _BIG_UNITS[gi]
        need_zero = g % 10 == 0 and gi > 0
    return out


def formal_amount(n: int) -> str:
    """新臺幣壹萬貳仟元整."""
    return f"新臺幣{formal_numeral(n)}元整"


def thousands(n: int) -> str:
    return f"{n:,}"


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional -> Simplified (OpenCC t2s)."""
    return _t2s().convert(text)


def person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def agency(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(CITIES) + rng.choice(CITY_UNITS)
    return rng.choice(CENTRAL)


def roc_date(rng: random.Random, year: int | None = None) -> str:
    y = year or rng.randint(110, 115)
    return f"中華民國{y}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"


def doc_number(rng: random.Random, year: int) -> str:
    return f"{rng.choice(PREFIX)}{rng.choice(TOPIC)}{rng.choice(SUFFIX)}第{year}{rng.randint(0, 99999999):08d}號"


def chinese_index(i: int) -> str:
    """1 -> 一, 11 -> 十一, 20 -> 二十 (item numbering in 說明)."""
    d = "零一二三四五六七八九"
    if i <= 10:
        return "十" if i == 10 else d[i]
    if i < 20:
        return "十" + d[i - 10]
    return d[i // 10] + "十" + (d[i % 10] if i % 10 else "")


def numbered(level: int, i: int) -> str:
    """Numbering of 公文 items by level: 一、 (一) 1. (1)."""
    if level == 0:
        return f"{chinese_index(i)}、"
    if level == 1:
        return f"（{chinese_index(i)}）"
    if level == 2:
        return f"{i}."
    return f"({i})"


@dataclass
class DocContent:
    """One document's text, before layout. `sections` are (heading, [items]) where an item is (level, text)."""

    agency: str
    title: str
    address_lines: list[str]
    receiver: str
    header_fields: list[tuple[str, str]]
    sections: list[tuple[str, list[tuple[int, str]]]]
    copies: list[str]
    signer_title: str
    signer_name: str
    seal_agency: str
    table: "TableSpec | None" = None
    vertical: str | None = None
    n_pages: int = 1
    extra: dict = field(default_factory=dict)


@dataclass
class TableSpec:
    """A grid of n_rows x n_cols with merged cells. `cells`: (row, col, rowspan, colspan, text), row-major."""

    n_rows: int
    n_cols: int
    cells: list[tuple[int, int, int, int, str]]

    def to_html(self) -> str:
        rows: dict[int, list[str]] = {r: [] for r in range(self.n_rows)}
        for r, c, rs, cs, text in sorted(self.cells):
            attrs = (f' colspan="{cs}"' if cs > 1 else "") + (f' rowspan="{rs}"' if rs > 1 else "")
            rows[r].append(f"<td{attrs}>{_escape(text)}</td>")
        return "<table>" + "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows.values()) + "</table>"

    def owner_grid(self) -> list[list[int]]:
        """grid[r][c] = index of the cell covering (r, c); every position covered exactly once."""
        grid = [[-1] * self.n_cols for _ in range(self.n_rows)]
        for k, (r, c, rs, cs, _) in enumerate(self.cells):
            for rr in range(r, r + rs):
                for cc in range(c, c + cs):
                    if grid[rr][cc] != -1:
                        raise ValueError(f"cells {grid[rr][cc]} and {k} overlap at row {rr}, column {cc}")
                    grid[rr][cc] = k
        if any(v == -1 for row in grid for v in row):
            raise ValueError("table grid has uncovered positions")
        return grid


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fill(rng: random.Random, template: str, ctx: dict) -> str:
    amount = rng.choice([rng.randint(1, 99) * 1000, rng.randint(1, 999) * 10000, rng.randint(1000, 9999999)])
    values = dict(ctx)
    values.update(
        year=rng.randint(110, 115), month=rng.randint(1, 12), day=rng.randint(1, 28), art=rng.randint(1, 120),
        date=roc_date(rng) if rng.random() < 0.5 else f"{rng.randint(110, 115)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        date2=f"{rng.randint(114, 116)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        amount_num=thousands(amount), amount_formal=formal_amount(amount), law=rng.choice(LAWS),
        program=rng.choice(PROGRAMS), agency=agency(rng), person=person(rng),
        docno=doc_number(rng, rng.randint(110, 115)), area=rng.choice(["02", "03", "04", "05", "06", "07", "089"]),
        tel=f"{rng.randint(2000, 8999)}-{rng.randint(0, 9999):04d}", tel2=f"{rng.randint(2000, 8999)}-{rng.randint(0, 9999):04d}",
        ext=rng.randint(100, 9999), email=f"{rng.choice(['service', 'edu', 'gov', 'ocr', 'plan'])}{rng.randint(1, 99)}@mail.{rng.choice(['gov', 'edu'])}.tw",
        url=f"https://www.{rng.choice(['gov.taipei', 'moe.gov.tw', 'moenv.gov.tw', 'ntpc.gov.tw', 'mohw.gov.tw'])}",
        count=rng.randint(2, 30), hour=rng.randint(9, 11), minute=rng.choice(["0", "30", "15"]), floor=rng.randint(2, 12),
        room=rng.randint(1, 9),
    )
    return template.format(**values)


def make_table(rng: random.Random) -> TableSpec:
    """A table with a header row, a colspan group in the header and a rowspan category column (sometimes)."""
    headers, group = rng.choice(TABLE_HEADERS)
    n_cols = rng.randint(4, min(6, len(headers)))
    headers = headers[:n_cols]
    n_body = rng.randint(2, 5)
    cells: list[tuple[int, int, int, int, str]] = []
    two_level = rng.random() < 0.5 and n_cols >= 4
    row = 0
    if two_level:
        # Header over two rows: the last two columns grouped under one colspan heading, the others rowspan 2.
        g0 = n_cols - 2
        for c in range(g0):
            cells.append((0, c, 2, 1, headers[c]))
        cells.append((0, g0, 1, 2, group))
        cells.append((1, g0, 1, 1, headers[g0]))
        cells.append((1, g0 + 1, 1, 1, headers[g0 + 1]))
        row = 2
    else:
        for c in range(n_cols):
            cells.append((0, c, 1, 1, headers[c]))
        row = 1
    n_rows = row + n_body
    r = row
    merge_first = rng.random() < 0.6
    while r < n_rows:
        span = min(rng.randint(1, 3), n_rows - r) if merge_first else 1
        first = rng.choice(CATEGORIES) if merge_first else str(r - row + 1)
        cells.append((r, 0, span, 1, first))
        for rr in range(r, r + span):
            c = 1
            while c < n_cols:
                # Occasionally a body cell spans two columns (a remark across "quantity" and "price").
                if c + 1 < n_cols and rng.random() < 0.1:
                    cells.append((rr, c, 1, 2, rng.choice(["同上", "另案辦理", "依實際支出核銷", "免填"])))
                    c += 2
                    continue
                cells.append((rr, c, 1, 1, _cell_text(rng, c)))
                c += 1
        r += span
    spec = TableSpec(n_rows=n_rows, n_cols=n_cols, cells=sorted(cells))
    spec.owner_grid()  # raises if the construction is wrong
    return spec


def _cell_text(rng: random.Random, col: int) -> str:
    kind = rng.random()
    if col == 1:
        return rng.choice(ITEMS)
    if kind < 0.3:
        return thousands(rng.randint(1, 500) * rng.choice([100, 1000, 50]))
    if kind < 0.45:
        return f"{rng.randint(1, 60)}{rng.choice(UNITS)}"
    if kind < 0.6:
        return f"{rng.randint(0, 100)}%"
    if kind < 0.75:
        return f"{rng.randint(113, 115)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d}"
    if kind < 0.85:
        return person(rng)
    return rng.choice(["", "無", "待確認", rng.choice(TERMS)]) or "—"


def seal_text(rng: random.Random, agency_name: str, shape: str, person_name: str = "") -> tuple[str, str]:
    """(text, centre text) of a seal, in reading order.

    square: a 2x2 personal seal (name + 印 / 之印, 4 characters) or a 3x3 agency seal (9 characters, padded with
    關防/之印); circular/oval: the agency name along the arc and a short centre text ("" for a star).
    """
    if shape == "square":
        if person_name and rng.random() < 0.5:
            name = person_name[-3:]
            text = (name + "印") if len(name) == 3 else (name + "之印")
            return text[:4].ljust(4, "印"), ""
        base = agency_name[:7]
        text = base + ("之印" if len(base) == 7 else "關防之印")
        return text[:9].ljust(9, "印"), ""
    centre = rng.choice(["", "收文章", "專用章", "校對章", "發文"])
    if shape == "oval":
        centre = f"{rng.randint(112, 115)}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d}"
    return agency_name[:12], centre


def make_document(rng: random.Random, *, p_table: float = 0.5, p_vertical: float = 0.2) -> DocContent:
    ag = agency(rng)
    year = rng.randint(110, 115)
    unit_short = "府" if ag.endswith("政府") else ("部" if ag.endswith("部") else "局" if ag.endswith("局") else "會" if ag.endswith("會") else "署" if ag.endswith("署") else "處")
    ctx = {"unit_short": unit_short}
    date = f"中華民國{year}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    header = [("發文日期", date), ("發文字號", doc_number(rng, year)), ("速別", rng.choice(SPEED)),
              ("密等及解密條件或保密期限", rng.choice(SECRECY))]
    if rng.random() < 0.7:
        header.append(("附件", rng.choice(["如文", "計畫書乙份", "申請表1份（PDF）", "無", "如說明二"])))
    subject = _fill(rng, rng.choice(SUBJECTS), ctx)
    explain: list[tuple[int, str]] = []
    n_items = rng.randint(2, 6)
    for i in range(1, n_items + 1):
        explain.append((0, numbered(0, i) + _fill(rng, rng.choice(REASONS), ctx)))
        if rng.random() < 0.35:
            for j in range(1, rng.randint(2, 3) + 1):
                sub = _fill(rng, rng.choice(REASONS + MEASURES), ctx)
                explain.append((1, numbered(1, j) + sub))
                if rng.random() < 0.2:
                    explain.append((2, numbered(2, 1) + "專有名詞：" + "、".join(rng.sample(TERMS, 4)) + "。"))
    sections: list[tuple[str, list[tuple[int, str]]]] = [("主旨", [(0, subject)]), ("說明", explain)]
    if rng.random() < 0.5:
        sections.append(("辦法", [(0, numbered(0, i) + _fill(rng, rng.choice(MEASURES), ctx))
                                   for i in range(1, rng.randint(1, 3) + 1)]))
    copies = [f"正本：{rng.choice(RECEIVERS)}", f"副本：{agency(rng)}、本{unit_short}{rng.choice(['秘書處', '主計處', '人事處', '資訊中心', '會計室'])}"]
    addr = [f"地址：{rng.choice(CITIES)}{rng.choice(['信義', '中正', '大安', '板橋', '前鎮', '西屯', '東'])}區"
            f"{rng.choice(['市府路', '中山路', '忠孝東路', '民生路', '府前路'])}{rng.randint(1, 300)}號",
            f"承辦人：{person(rng)}", f"電話：(0{rng.randint(2, 8)}){rng.randint(2000, 8999)}-{rng.randint(0, 9999):04d}",
            f"電子信箱：{rng.choice(['doc', 'svc', 'edu'])}{rng.randint(1, 999)}@mail.gov.tw"]
    doc = DocContent(
        agency=ag, title=f"{ag}　函", address_lines=addr, receiver=f"受文者：{rng.choice(RECEIVERS)}",
        header_fields=header, sections=sections, copies=copies, signer_title=rng.choice(TITLES),
        signer_name=person(rng), seal_agency=ag,
        table=make_table(rng) if rng.random() < p_table else None,
        vertical=(rng.choice(["裝訂線", "機關存查", "檔號保存年限", "依法公告周知"]) + rng.choice(["", "　" + person(rng)]))
        if rng.random() < p_vertical else None,
    )
    return doc


def map_document(doc: DocContent, fn) -> DocContent:
    """Apply a text function (e.g. to_simplified) to every string of a document."""
    import dataclasses as _dc

    table = None
    if doc.table is not None:
        table = TableSpec(doc.table.n_rows, doc.table.n_cols, [(r, c, rs, cs, fn(t)) for r, c, rs, cs, t in doc.table.cells])
    return _dc.replace(
        doc, agency=fn(doc.agency), title=fn(doc.title), address_lines=[fn(x) for x in doc.address_lines],
        receiver=fn(doc.receiver), header_fields=[(fn(k), fn(v)) for k, v in doc.header_fields],
        sections=[(fn(h), [(lvl, fn(t)) for lvl, t in items]) for h, items in doc.sections],
        copies=[fn(x) for x in doc.copies], signer_title=fn(doc.signer_title), signer_name=fn(doc.signer_name),
        seal_agency=fn(doc.seal_agency), table=table, vertical=fn(doc.vertical) if doc.vertical else None)


def all_text(doc: DocContent) -> str:
    """Every character the document may draw (for the font coverage check)."""
    parts = [doc.title, doc.receiver, doc.signer_title, doc.signer_name, doc.seal_agency, doc.vertical or "",
             "第頁共，0123456789收文章專用校對發之印關防."]
    parts += doc.address_lines + doc.copies + [k + "：" + v for k, v in doc.header_fields]
    for h, items in doc.sections:
        parts.append(h + "：")
        parts += [t for _, t in items]
    if doc.table is not None:
        parts += [c[4] for c in doc.table.cells]
    return "".join(parts)
