"""Tiny files in each source's real dump format, written by the tests (no downloads, no apt)."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

ENGLISH = ("The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence "
           "near the river, thinking about the harvest that will come in autumn.")
GERMAN = ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer vom alten Holzzaun am "
          "Fluss zuschaut und an die Ernte denkt, die im Herbst kommen wird.")


def stackexchange_posts(folder: Path) -> Path:
    rows = [
        '<row Id="1" PostTypeId="1" AcceptedAnswerId="3" Score="5" Title="How do I reverse a list in Python?" '
        'Body="&lt;p&gt;I have a &lt;code&gt;list&lt;/code&gt; and want it backwards.&lt;/p&gt;" />',
        '<row Id="2" PostTypeId="2" ParentId="1" Score="10" Body="&lt;p&gt;Use slicing with a step.&lt;/p&gt;" />',
        '<row Id="3" PostTypeId="2" ParentId="1" Score="4" '
        'Body="&lt;p&gt;Call &lt;b&gt;reversed()&lt;/b&gt; on it.&lt;/p&gt;'
        '&lt;pre&gt;list(reversed(x))&lt;/pre&gt;" />',
        '<row Id="4" PostTypeId="1" Score="1" Title="Why is the sky blue?" '
        'Body="&lt;p&gt;Asking for a kid.&lt;/p&gt;" />',
        '<row Id="5" PostTypeId="2" ParentId="4" Score="0" Body="&lt;p&gt;Because.&lt;/p&gt;" />',
        '<row Id="6" PostTypeId="2" ParentId="4" Score="7" '
        'Body="&lt;p&gt;Rayleigh scattering of sunlight.&lt;/p&gt;" />',
        '<row Id="7" PostTypeId="1" AcceptedAnswerId="8" Score="2" Title="Unanswered well?" '
        'Body="&lt;p&gt;x&lt;/p&gt;" />',
        '<row Id="8" PostTypeId="2" ParentId="7" Score="0" Body="&lt;p&gt;Accepted but unvoted.&lt;/p&gt;" />',
    ]
    path = folder / "Posts.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n  ' + "\n  ".join(rows) + "\n</posts>\n",
                    encoding="utf-8")
    return path


def wikipedia_xml(folder: Path) -> Path:
    def page(title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
        red = f'<redirect title="{redirect}" />' if redirect else ""
        body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return (f"<page><title>{title}</title><ns>{ns}</ns><id>1</id>{red}<revision><id>2</id>"
                f'<text bytes="1" xml:space="preserve">{body}</text></revision></page>')

    article = ("'''Aspirin''' is a [[medication]] used to reduce [[pain]], fever, or inflammation. It was first "
               "made in 1897 and is one of the most widely used medicines in the world today.<ref>A source</ref>\n"
               "[[File:Aspirin.png|thumb|A caption that should vanish]]\n"
               "== Medical uses ==\nAspirin is used in the treatment of a number of conditions, including fever, "
               "pain, rheumatic fever, and inflammatory conditions such as {{lang|la|arthritis}} and "
               "pericarditis, and low doses prevent heart attacks.\n"
               "== References ==\n{{reflist}} Lots of references that are long enough to pass the length "
               "bound of the builder but must be skipped because of the section title itself.\n"
               "== Short ==\nToo short.\n")
    pages = [page("Aspirin", article), page("Mercury (disambiguation)", "'''Mercury''' may refer to: " * 20),
             page("Talk:Aspirin", article, ns=1), page("ASA", "#REDIRECT [[Aspirin]]", redirect="Aspirin"),
             page("Mercury", "{{disambiguation}} " + "Mercury may be a planet or an element. " * 10)]
    xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">'
           "<siteinfo><sitename>Wikipedia</sitename></siteinfo>" + "".join(pages) + "</mediawiki>")
    path = folder / "enwiki-pages-articles.xml.bz2"
    import bz2

    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def reddit_jsonl(folder: Path) -> list[Path]:
    subs = [{"id": "a1", "title": "What book changed your life?", "selftext": "Looking for ideas.", "score": 50,
             "subreddit": "books"},
            {"id": "a2", "title": "Deleted post", "selftext": "[deleted]", "score": 3, "subreddit": "x"},
            {"id": "a3", "title": "No good comments here", "selftext": "", "score": 1, "subreddit": "x"}]
    comments = [{"id": "c1", "link_id": "t3_a1", "parent_id": "t3_a1", "body": "Dune, for its ecology.", "score": 12},
                {"id": "c2", "link_id": "t3_a1", "parent_id": "t3_a1", "body": "Best comment ever.", "score": 40},
                {"id": "c3", "link_id": "t3_a1", "parent_id": "t1_c2", "body": "A reply, not top level", "score": 99},
                {"id": "c4", "link_id": "t3_a2", "parent_id": "t3_a2", "body": "Top comment on a2", "score": 2},
                {"id": "c5", "link_id": "t3_a3", "parent_id": "t3_a3", "body": "negative", "score": 0},
                {"id": "c6", "link_id": "t3_a3", "parent_id": "t3_a3", "body": "x" * 5000, "score": 30},
                {"id": "c7", "link_id": "t3_zz", "parent_id": "t3_zz", "body": "orphan comment", "score": 3}]
    rs, rc = folder / "RS_2019-01.jsonl", folder / "RC_2019-01.jsonl.gz"
    rs.write_text("".join(json.dumps(s) + "\n" for s in subs) + "{broken\n", encoding="utf-8")
    with gzip.open(rc, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in comments)
    return [rs, rc]


def papers_jsonl(folder: Path) -> Path:
    rows = [{"id": "0704.0001", "title": "Calculation of prompt diphoton\n  production cross sections",
             "abstract": "  A fully differential calculation in perturbative quantum chromodynamics is\npresented.\n",
             "categories": "hep-ph"},
            {"paperId": "s2-1", "title": "An S2 paper", "paperAbstract": "Its abstract lives in paperAbstract."},
            {"paper_id": "s2orc-9", "metadata": {"title": "S2ORC nested", "abstract": "Nested abstract text."}},
            {"id": "no-abstract", "title": "Title only", "abstract": ""}]
    path = folder / "arxiv-metadata-oai-snapshot.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    return path


def warc_file(folder: Path) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    body = " ".join(["<p>" + ENGLISH + f" Paragraph {i} adds detail about the farm.</p>" for i in range(4)])
    html = (f"<html><head><title>Farm life in autumn</title></head><body><nav>Home | About | Contact</nav>"
            f"<article><h1>Farm life in autumn</h1>{body}</article><footer>Copyright 2024 cookie policy"
            f"</footer></body></html>").encode()
    path = folder / "crawl.warc.gz"
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.0")
        writer.write_record(writer.create_warc_record("http://example.com/farm", "response",
                                                      payload=io.BytesIO(html), http_headers=headers))
        img = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.0")
        writer.write_record(writer.create_warc_record("http://example.com/a.png", "response",
                                                      payload=io.BytesIO(b"\x89PNG"), http_headers=img))
    return path


def wet_file(folder: Path) -> Path:
    from warcio.warcwriter import WARCWriter

    path = folder / "crawl.warc.wet.gz"
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        text = ("Harvest festival guide\n" + ENGLISH + "\n" + ENGLISH).encode()
        writer.write_record(writer.create_warc_record("http://example.com/fest", "conversion",
                                                      payload=io.BytesIO(text),
                                                      warc_content_type="text/plain"))
        writer.write_record(writer.create_warc_record("http://example.com/long", "conversion",
                                                      payload=io.BytesIO((ENGLISH * 3 + "\nshort").encode()),
                                                      warc_content_type="text/plain"))
    return path


def debian_translation(folder: Path) -> Path:
    text = ("Package: 0ad\nDescription-md5: d9\nDescription-en: Real-time strategy game of ancient warfare\n"
            " 0 A.D. is a free, open-source real-time strategy game.\n .\n It runs on many systems.\n\n"
            "Package: nolong\nDescription-md5: aa\nDescription-en: Synopsis only\n\n"
            "Package: hello\nVersion: 2.10\nDescription: example package based on GNU hello\n"
            " The GNU hello program produces a familiar, friendly greeting.\n")
    path = folder / "deb_dists_main_i18n_Translation-en.gz"
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path


def wordnet_data(folder: Path) -> Path:
    lines = ["  1 This software and database is being provided to you, the LICENSEE, by  ",
             "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 | a member of the "
             "genus Canis; \"the dog barked all night\"  ",
             "00001740 00 a 01 able 0 005 = 05207437 n 0000 | (usually followed by `to') having the necessary "
             "means or skill to do something  ",
             "01234567 00 s 02 big(a) 0 large 0 000 | above average in size  "]
    path = folder / "data.noun"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pydocs_html(folder: Path) -> Path:
    html = """<html><head><title>json</title></head><body><div class="body">
<section id="module-json"><h1>json — JSON encoder and decoder<a class="headerlink" href="#">¶</a></h1>
<p>JSON is a lightweight data interchange format inspired by JavaScript object literal syntax.</p>
<div class="toctree-wrapper"><ul><li>Table of contents entry</li></ul></div>
<section id="basic-usage"><h2>Basic Usage<a class="headerlink" href="#">¶</a></h2>
<p>Serialize obj as a JSON formatted stream to fp.</p><pre>json.dump(obj, fp)</pre></section>
<div class="section" id="old"><h2>Old style section</h2><p>Older Sphinx used div elements.</p></div>
</section></div></body></html>"""
    (folder / "library").mkdir(exist_ok=True)
    (folder / "genindex.html").write_text("<html><body><section><h1>Index</h1><p>x</p></section></body></html>")
    path = folder / "library" / "json.html"
    path.write_text(html, encoding="utf-8")
    return path


def man_pages(folder: Path) -> list[Path]:
    man1 = folder / "man1"
    man1.mkdir(parents=True, exist_ok=True)
    ls = (".\\\" a comment\n.TH LS 1 \"2024\" \"GNU coreutils\"\n.SH NAME\nls \\- list directory contents\n"
          ".SH SYNOPSIS\n.B ls\n[\\fIOPTION\\fR]... [\\fIFILE\\fR]...\n.SH DESCRIPTION\n.PP\nList information "
          "about the FILEs (the current directory by default).\n.TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\n"
          "do not ignore entries starting with .\n.SH AUTHOR\nWritten by someone.\n")
    (man1 / "ls.1").write_text(ls, encoding="utf-8")
    mdoc = (".Dd January 1, 2024\n.Dt CAT 1\n.Sh NAME\n.Nm cat\n.Nd concatenate and print files\n.Sh SYNOPSIS\n"
            ".Nm\n.Op Fl u\n.Sh DESCRIPTION\nThe\n.Nm\nutility reads files sequentially, writing them to the "
            "standard output.\n.Pp\nSee\n.Xr more 1 .\n")
    with gzip.open(man1 / "cat.1.gz", "wt", encoding="utf-8") as fh:
        fh.write(mdoc)
    (man1 / "redirect.1").write_text(".so man1/ls.1\n", encoding="utf-8")
    de = folder / "de" / "man1"
    de.mkdir(parents=True, exist_ok=True)
    (de / "ls.1").write_text(".TH LS 1\n.SH BEZEICHNUNG\nls \\- Verzeichnisinhalte auflisten\n.SH ÜBERSICHT\n"
                             ".B ls\n.SH BESCHREIBUNG\nAuflisten von Informationen über die Dateien.\n",
                             encoding="utf-8")
    return [man1 / "ls.1", man1 / "cat.1.gz", man1 / "redirect.1", de / "ls.1"]
